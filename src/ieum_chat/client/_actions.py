"""What a member does with messages: send them (text, stickers, and the media of an upload:
images, voice notes and sounds, videos, files), and change those already sent (edit, unsend,
delete for me, reactions). Each is a request of ``_requests`` queued in the client's outbox
under its tempId (:meth:`MessageActions._submit`, the client's): re-sent with the same tempId
after every reconnect until its RECEIPT, stored once by the server, answered with a
:class:`SendReceipt`.
"""

from __future__ import annotations

import abc
import uuid

from ._events import SendReceipt
from ._media import UploadResult
from ._requests import (
    AppRequest,
    check_temp_id,
    delete_request,
    edit_request,
    media_fields,
    react_request,
    send_request,
    unsend_request,
)

__all__ = ["MessageActions"]


class MessageActions(abc.ABC):
    """The message and change requests of :class:`ChatClient`, on its outbox."""

    @abc.abstractmethod
    async def _submit(self, temp_id: str, request: AppRequest) -> SendReceipt:
        """Queue ``request`` in the outbox under ``temp_id`` (or join the pending one) and
        wait for its RECEIPT."""

    # -- sending -----------------------------------------------------------------------------

    async def send_text(
        self,
        content: str,
        *,
        temp_id: str | None = None,
        reply_to: uuid.UUID | str | None = None,
    ) -> SendReceipt:
        """``reply_to``: the id of the message this one answers (the server shows its
        preview in ``ChatMessage.reply_to``)."""
        return await self.send("TEXT", content=content, temp_id=temp_id, reply_to=reply_to)

    async def send_image(
        self, url: str, caption: str | None = None, *, temp_id: str | None = None
    ) -> SendReceipt:
        """``url``: an image upload's ``media_url`` (or a URL on a host the server allows)."""
        return await self.send("IMAGE", content=caption, image_url=url, temp_id=temp_id)

    async def send_audio(
        self,
        url: str,
        *,
        duration_ms: int | None = None,
        caption: str | None = None,
        temp_id: str | None = None,
    ) -> SendReceipt:
        """A voice note or a sound: ``url`` is the ``media_url`` of a completed upload of
        this couple (:meth:`ChatApi.upload`). ``duration_ms`` may be left out: the server
        knows it from the upload, and refuses one more than max(1 s, 10 %) off."""
        media = media_fields(url, duration_ms=duration_ms)
        return await self._send_media("AUDIO", media, caption, temp_id)

    async def send_video(
        self,
        url: str,
        *,
        duration_ms: int | None = None,
        thumbnail_url: str | None = None,
        caption: str | None = None,
        temp_id: str | None = None,
    ) -> SendReceipt:
        """A video upload's ``media_url``; the server adds its duration and thumbnail (given
        ones must agree with the upload's)."""
        media = media_fields(url, duration_ms=duration_ms, thumbnail_url=thumbnail_url)
        return await self._send_media("VIDEO", media, caption, temp_id)

    async def send_file(
        self,
        url: str,
        *,
        file_name: str | None = None,
        size: int | None = None,
        caption: str | None = None,
        temp_id: str | None = None,
    ) -> SendReceipt:
        """A document's ``media_url``; the server adds the name and size it was uploaded
        with (given ones must be the same)."""
        media = media_fields(url, file_name=file_name, size=size)
        return await self._send_media("FILE", media, caption, temp_id)

    async def send_upload(
        self, upload: UploadResult, caption: str | None = None, *, temp_id: str | None = None
    ) -> SendReceipt:
        """The message of an upload's kind (IMAGE, AUDIO, VIDEO or FILE) carrying it; the
        server fills in what it knows of the file."""
        if upload.kind == "IMAGE":
            return await self.send_image(upload.media_url, caption, temp_id=temp_id)
        if upload.kind not in ("AUDIO", "VIDEO", "FILE"):
            raise ValueError(f"no message type carries an upload of kind {upload.kind!r}")
        return await self._send_media(upload.kind, media_fields(upload.media_url), caption, temp_id)

    async def _send_media(
        self, type: str, media: dict[str, object], caption: str | None, temp_id: str | None
    ) -> SendReceipt:
        temp_id = check_temp_id(temp_id)
        request = send_request(type, caption, None, temp_id, media=media)
        return await self._submit(temp_id, request)

    async def send_sticker(self, sticker_id: str, *, temp_id: str | None = None) -> SendReceipt:
        return await self.send("STICKER", content=sticker_id, temp_id=temp_id)

    async def send(
        self,
        type: str,
        *,
        content: str | None = None,
        image_url: str | None = None,
        temp_id: str | None = None,
        reply_to: uuid.UUID | str | None = None,
    ) -> SendReceipt:
        """Queue a message and return once the server's RECEIPT says it is stored.

        Re-sent with the same tempId after every reconnect until then; retried automatically
        (at most `max_send_retries` times, with backoff) after RATE_LIMITED or a database
        failure; raises SendError when refused. Waits while the outbox is full. Cancelling the
        call does not withdraw the message: it is still delivered (and stored once).
        """
        temp_id = check_temp_id(temp_id)
        return await self._submit(
            temp_id, send_request(type, content, image_url, temp_id, reply_to)
        )

    # -- changes of sent messages (the outbox's rules: see `send`) ---------------------------

    async def edit(
        self, message_id: uuid.UUID | str, content: str, *, temp_id: str | None = None
    ) -> SendReceipt:
        """Change the text of one of this member's TEXT messages. SendError: NOT_FOUND (no
        such message here), FORBIDDEN (not theirs), SEND_FAILED (blank or too long, not TEXT,
        unsent)."""
        temp_id = check_temp_id(temp_id)
        return await self._submit(temp_id, edit_request(message_id, content, temp_id))

    async def unsend(
        self, message_id: uuid.UUID | str, *, temp_id: str | None = None
    ) -> SendReceipt:
        """Take back one of this member's messages for both members (a tombstone stays).
        SendError: NOT_FOUND, FORBIDDEN, WINDOW_EXPIRED (sent too long ago)."""
        temp_id = check_temp_id(temp_id)
        return await self._submit(temp_id, unsend_request(message_id, temp_id))

    async def delete_for_me(self, message_id: uuid.UUID | str) -> SendReceipt:
        """Hide a message (either member's) from this member's history and devices; the
        partner still sees it. SendError: NOT_FOUND."""
        temp_id = check_temp_id(None)
        return await self._submit(temp_id, delete_request(message_id, temp_id))

    async def react(
        self, message_id: uuid.UUID | str, emoji: str, *, temp_id: str | None = None
    ) -> SendReceipt:
        """Add this member's ``emoji`` (one emoji) to a message; adding it again changes
        nothing. SendError: NOT_FOUND, SEND_FAILED (not one emoji, too many different
        emojis on the message, an unsent message)."""
        temp_id = check_temp_id(temp_id)
        return await self._submit(temp_id, react_request(message_id, emoji, temp_id, add=True))

    async def unreact(
        self, message_id: uuid.UUID | str, emoji: str, *, temp_id: str | None = None
    ) -> SendReceipt:
        """Remove this member's ``emoji`` from a message (nothing if it is not there)."""
        temp_id = check_temp_id(temp_id)
        return await self._submit(temp_id, react_request(message_id, emoji, temp_id, add=False))
