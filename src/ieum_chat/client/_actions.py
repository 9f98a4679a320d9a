"""What a member does with messages: send them, and change those already sent (edit, unsend,
delete for me, reactions). Each is a request of ``_requests`` queued in the client's outbox
under its tempId (:meth:`MessageActions._submit`, the client's): re-sent with the same tempId
after every reconnect until its RECEIPT, stored once by the server, answered with a
:class:`SendReceipt`.
"""

from __future__ import annotations

import abc
import uuid

from ._events import SendReceipt
from ._requests import (
    AppRequest,
    check_temp_id,
    delete_request,
    edit_request,
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
        return await self.send("IMAGE", content=caption, image_url=url, temp_id=temp_id)

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
