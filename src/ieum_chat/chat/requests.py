"""Validation of what clients send, with an English ``detail`` saying what was wrong.

Unknown fields are ignored (clients evolve faster than servers); wrong types are refused.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final

import emoji as emoji_data
import orjson

from ieum_chat.errors import ChangeFailed, SendFailed
from ieum_chat.media_types import file_name_problem
from ieum_chat.store.records import ChangeKind

__all__ = [
    "MAX_DURATION_MS",
    "MAX_EMOJI_LENGTH",
    "MAX_READ_IDS",
    "MAX_SEQ",
    "MAX_SIZE",
    "MAX_TEMP_ID_LENGTH",
    "MEDIA_TYPES",
    "ChangeRequest",
    "Claims",
    "MessageType",
    "ReadRequest",
    "SendRequest",
    "image_host_allowed",
    "parse_change_request",
    "parse_read_request",
    "parse_send_request",
    "parse_seq",
    "parse_typing_request",
    "url_host",
    "validate_change",
    "validate_emoji",
    "validate_notice",
    "validate_send",
]

MAX_TEMP_ID_LENGTH = 64
MAX_URL_LENGTH = 2048
MAX_STICKER_LENGTH = 200
MAX_READ_IDS = 1000
MAX_SEQ = 2**63 - 1  # messages.seq is a BIGINT
# Code points of one emoji: the longest ZWJ sequences (families, flags of subdivisions) are
# about a dozen; past this nothing is an emoji, and nothing larger is parsed.
MAX_EMOJI_LENGTH = 32
_MAX_SEQ_DIGITS = len(str(MAX_SEQ))


class MessageType(enum.StrEnum):
    TEXT = "TEXT"
    IMAGE = "IMAGE"
    STICKER = "STICKER"
    AUDIO = "AUDIO"
    VIDEO = "VIDEO"
    FILE = "FILE"
    # From the app's backend only (the service API), never from a member.
    NOTICE = "NOTICE"


# The types a member may send, and those that carry a file.
MEMBER_TYPES = ", ".join(t.value for t in MessageType if t is not MessageType.NOTICE)
# What a member may send, by its wire name (a dict lookup: calling the enum took ten times as long).
_MEMBER_TYPES: Final = {t.value: t for t in MessageType if t is not MessageType.NOTICE}
MEDIA_TYPES = frozenset({MessageType.IMAGE, MessageType.AUDIO, MessageType.VIDEO, MessageType.FILE})
MAX_DURATION_MS = 2**31 - 1  # a claim past it is no duration (about 24 days)
MAX_SIZE = 2**53  # JSON numbers clients agree on


@dataclass(frozen=True, slots=True)
class Claims:
    """What a client said of a media message's file besides its URL. The server knows
    these from the upload; a claim must agree with them (``chat.media``)."""

    duration_ms: int | None = None
    thumbnail_url: str | None = None
    file_name: str | None = None
    size: int | None = None


_NO_CLAIMS: Final = Claims()


@dataclass(init=False, slots=True, unsafe_hash=True)
class SendRequest:
    """A SEND's message as asked for. Immutable, its ``__init__`` written out (a record every
    message builds; see ``ieum_chat._build``)."""

    type: Final[MessageType]
    content: Final[str | None]
    image_url: Final[str | None]
    temp_id: Final[str | None]
    reply_to: Final[uuid.UUID | None]
    # The file of a media message (IMAGE: its imageUrl), and what the client said of it.
    media_url: Final[str | None]
    claims: Final[Claims]

    def __init__(  # noqa: PLR0917 - positional, as a dataclass's own __init__ is
        self,
        type: MessageType,
        content: str | None,
        image_url: str | None,
        temp_id: str | None,
        reply_to: uuid.UUID | None = None,
        media_url: str | None = None,
        claims: Claims = _NO_CLAIMS,
    ) -> None:
        self.type = type
        self.content = content
        self.image_url = image_url
        self.temp_id = temp_id
        self.reply_to = reply_to
        self.media_url = media_url
        self.claims = claims

    @property
    def file_url(self) -> str | None:
        """The file the message carries (an IMAGE made with only ``image_url`` too)."""
        return self.media_url if self.media_url is not None else self.image_url


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """An edit (``content``), unsend, delete for me (HIDE) or reaction (``emoji``, ``add``)
    of the message ``message_id``."""

    kind: ChangeKind
    message_id: uuid.UUID
    temp_id: str | None = None
    content: str | None = None
    emoji: str | None = None
    add: bool = True


@dataclass(frozen=True, slots=True)
class ReadRequest:
    message_ids: tuple[uuid.UUID, ...] | None
    up_to_seq: int | None


def _json_object(body: bytes | str, *, temp_id: str | None = None) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SendFailed("body is not valid JSON", temp_id=temp_id) from None
    if not isinstance(value, dict):
        raise SendFailed("body must be a JSON object", temp_id=temp_id)
    return value


def _optional_str(data: dict[str, Any], key: str, temp_id: str | None) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SendFailed(f"'{key}' must be a string", temp_id=temp_id)
    if "\x00" in value:  # PostgreSQL text cannot hold NUL; refuse it on every database
        raise SendFailed(f"'{key}' must not contain NUL characters", temp_id=temp_id)
    return value


def parse_send_request(body: bytes | str, *, max_text_length: int = 4000) -> SendRequest:
    data = _json_object(body)
    return validate_send(data, max_text_length=max_text_length)


def _temp_id(data: dict[str, Any]) -> str | None:
    raw_temp_id = data.get("tempId")
    if raw_temp_id is not None and not isinstance(raw_temp_id, str):
        raise SendFailed("'tempId' must be a string")
    temp_id: str | None = raw_temp_id
    if temp_id is not None and not (0 < len(temp_id) <= MAX_TEMP_ID_LENGTH):
        raise SendFailed(f"'tempId' must have 1 to {MAX_TEMP_ID_LENGTH} characters")
    if temp_id is not None and "\x00" in temp_id:
        raise SendFailed("'tempId' must not contain NUL characters")
    return temp_id


def _message_id(value: object, name: str, temp_id: str | None) -> uuid.UUID:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise SendFailed(f"'{name}' must be a message id (a UUID)", temp_id=temp_id)


def _text(content: str | None, max_text_length: int, temp_id: str | None, kind: str) -> str:
    if content is None or not content.strip():
        raise SendFailed(f"{kind} needs a non-blank 'content'", temp_id=temp_id)
    if len(content) > max_text_length:
        raise SendFailed(f"'content' is longer than {max_text_length} characters", temp_id=temp_id)
    return content


def validate_send(data: dict[str, Any], *, max_text_length: int = 4000) -> SendRequest:
    temp_id = _temp_id(data)
    raw_type = data.get("type")
    if not isinstance(raw_type, str):
        raise SendFailed(f"'type' must be one of {MEMBER_TYPES}", temp_id=temp_id)
    kind = _MEMBER_TYPES.get(raw_type)
    if kind is None:
        raise SendFailed(f"'type' must be one of {MEMBER_TYPES}", temp_id=temp_id)
    content = _optional_str(data, "content", temp_id)
    raw_reply = data.get("replyTo")
    reply_to = None if raw_reply is None else _message_id(raw_reply, "replyTo", temp_id)
    if kind is MessageType.TEXT:
        content = _text(content, max_text_length, temp_id, "TEXT")
    elif kind is MessageType.STICKER:
        if content is None or not content.strip():
            raise SendFailed("STICKER needs 'content' (the sticker id)", temp_id=temp_id)
        if len(content) > MAX_STICKER_LENGTH:
            raise SendFailed(
                f"a sticker id has at most {MAX_STICKER_LENGTH} characters", temp_id=temp_id
            )
    elif content is not None and len(content) > max_text_length:
        raise SendFailed(f"'content' is longer than {max_text_length} characters", temp_id=temp_id)
    # The file's fields are checked whatever the type (the send schema documents them so)
    # and kept for the types that carry a file.
    image_url = _optional_str(data, "imageUrl", temp_id)
    media_url = _optional_str(data, "mediaUrl", temp_id)
    claims = _claims(data, kind, temp_id)
    if kind not in MEDIA_TYPES:
        return SendRequest(
            type=kind, content=content, image_url=None, temp_id=temp_id, reply_to=reply_to
        )
    url = _media_url(kind, image_url, media_url, temp_id)
    return SendRequest(
        type=kind,
        content=content,
        image_url=url if kind is MessageType.IMAGE else None,
        temp_id=temp_id,
        reply_to=reply_to,
        media_url=url,
        claims=claims,
    )


def _media_url(
    kind: MessageType, image_url: str | None, media_url: str | None, temp_id: str | None
) -> str:
    """The file's URL: ``mediaUrl``; an IMAGE's ``imageUrl`` (the plan's name) as well."""
    name, url = "mediaUrl", media_url
    if kind is MessageType.IMAGE:
        if image_url is not None and url is not None and image_url != url:
            raise SendFailed("'imageUrl' and 'mediaUrl' name different files", temp_id=temp_id)
        if image_url is not None or url is None:
            name, url = "imageUrl", image_url
    if url is None or not url.strip():
        raise SendFailed(f"{kind.value} needs '{name}'", temp_id=temp_id)
    if len(url) > MAX_URL_LENGTH or not url.startswith(("https://", "http://")):
        raise SendFailed(f"'{name}' must be an http(s) URL", temp_id=temp_id)
    return url


def _count(data: dict[str, Any], key: str, top: int, temp_id: str | None) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise SendFailed(f"'{key}' must be a whole number from 0 to {top}", temp_id=temp_id)
    return value


def _claims(data: dict[str, Any], kind: MessageType, temp_id: str | None) -> Claims:
    """What the client said of the file: checked whatever the type, kept for the types that
    have each field (a message without a file shares the one empty ``Claims``)."""
    duration = _count(data, "durationMs", MAX_DURATION_MS, temp_id)
    thumbnail = _optional_str(data, "thumbnailUrl", temp_id)
    name = _optional_str(data, "fileName", temp_id)
    if name is not None and (problem := file_name_problem(name)) is not None:
        raise SendFailed(problem, temp_id=temp_id)
    size = _count(data, "size", MAX_SIZE, temp_id)
    if kind not in MEDIA_TYPES:
        return _NO_CLAIMS
    return Claims(
        duration_ms=duration if kind in (MessageType.AUDIO, MessageType.VIDEO) else None,
        thumbnail_url=thumbnail if kind in (MessageType.IMAGE, MessageType.VIDEO) else None,
        file_name=name if kind is MessageType.FILE else None,
        size=size if kind is MessageType.FILE else None,
    )


def validate_notice(data: dict[str, Any], *, max_text_length: int = 4000) -> SendRequest:
    """A notice of the service API: ``{"content", "tempId"?}``, the content as a TEXT's."""
    temp_id = _temp_id(data)
    content = _text(_optional_str(data, "content", temp_id), max_text_length, temp_id, "a notice")
    return SendRequest(type=MessageType.NOTICE, content=content, image_url=None, temp_id=temp_id)


def validate_emoji(value: object, *, temp_id: str | None = None) -> str:
    """One emoji, as one grapheme: a ZWJ sequence, a flag, a keycap or a skin tone counts as
    one; text, two emojis or an emoji with anything beside it does not."""
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_EMOJI_LENGTH
        or not emoji_data.is_emoji(value)
    ):
        raise SendFailed("'emoji' must be one emoji", temp_id=temp_id)
    return value


# The body fields each change takes besides messageId and tempId.
_CHANGE_KINDS = {
    "edit": ChangeKind.EDIT,
    "unsend": ChangeKind.UNSEND,
    "delete": ChangeKind.HIDE,
    "react": ChangeKind.REACT,
}


def parse_change_request(
    action: str, body: bytes | str, *, max_text_length: int = 4000
) -> ChangeRequest:
    """The body of SEND ``/app/chat/{coupleId}/{action}`` (edit, unsend, delete, react)."""
    try:
        data = _json_object(body)
    except SendFailed as exc:
        raise ChangeFailed(exc.detail) from None
    return validate_change(action, data, max_text_length=max_text_length)


def validate_change(
    action: str, data: dict[str, Any], *, max_text_length: int = 4000
) -> ChangeRequest:
    """The change ``action`` asks for; :class:`ChangeFailed` saying what was wrong."""
    try:
        return _validate_change(action, data, max_text_length)
    except ChangeFailed:
        raise
    except SendFailed as exc:
        raise ChangeFailed(exc.detail, temp_id=exc.temp_id) from None


def _validate_change(action: str, data: dict[str, Any], max_text_length: int) -> ChangeRequest:
    kind = _CHANGE_KINDS[action]
    temp_id = _temp_id(data)
    message_id = _message_id(data.get("messageId"), "messageId", temp_id)
    if kind is ChangeKind.EDIT:
        content = _text(
            _optional_str(data, "content", temp_id), max_text_length, temp_id, "an edit"
        )
        return ChangeRequest(kind, message_id, temp_id, content=content)
    if kind is ChangeKind.REACT:
        op = data.get("op", "add")
        if op not in ("add", "remove"):
            raise SendFailed('\'op\' must be "add" or "remove"', temp_id=temp_id)
        emoji = validate_emoji(data.get("emoji"), temp_id=temp_id)
        return ChangeRequest(kind, message_id, temp_id, emoji=emoji, add=op == "add")
    return ChangeRequest(kind, message_id, temp_id)


def parse_read_request(body: bytes | str) -> ReadRequest:
    data = _json_object(body)
    ids = data.get("messageIds")
    up_to = data.get("upToSeq")
    if (ids is None) == (up_to is None):
        raise SendFailed("give exactly one of 'messageIds' or 'upToSeq'")
    if up_to is not None:
        return ReadRequest(message_ids=None, up_to_seq=parse_seq(up_to, "upToSeq"))
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise SendFailed("'messageIds' must be an array of message id strings")
    if len(ids) > MAX_READ_IDS:
        raise SendFailed(f"'messageIds' holds at most {MAX_READ_IDS} ids")
    try:
        parsed = tuple(uuid.UUID(i) for i in ids)
    except ValueError:
        raise SendFailed("'messageIds' must hold message ids (UUIDs)") from None
    return ReadRequest(message_ids=parsed, up_to_seq=None)


def parse_seq(value: object, name: str, *, header: bool = False) -> int:
    """A seq a client gave, from 0 to ``MAX_SEQ`` (what the database can hold): a JSON
    number (17, or 17.0 from clients with only doubles), or with ``header`` a header's ASCII
    digits. Anything else, out of range included, is :class:`SendFailed` naming ``name``;
    nothing larger ever reaches a driver."""
    if header and isinstance(value, str):
        # int() would also take "+5", " 5", "1_0" and non-ASCII digits: a header is digits.
        if value.isascii() and value.isdigit() and len(value) <= _MAX_SEQ_DIGITS:
            value = int(value)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
        raise SendFailed(f"'{name}' must be an integer from 0 to {MAX_SEQ}")
    return value


def parse_typing_request(body: bytes | str) -> bool:
    data = _json_object(body)
    typing = data.get("typing")
    if not isinstance(typing, bool):
        raise SendFailed("'typing' must be true or false")
    return typing


# The host of an http(s) URL as WHATWG clients (browsers, OkHttp) read it, written so that
# every parser reads it the same: the authority runs from "//" to the first "/", "?" or "#"
# (a backslash, which WHATWG also ends it at, is refused before), holds no user info, and
# its host is lower-case letters, digits, dots and hyphens in non-empty labels, or a
# bracketed IPv6 literal, then an optional decimal port.
_AUTHORITY: Final = re.compile(r"https?://([^/?#]*)", re.IGNORECASE)
_HOST_PORT: Final = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::([0-9]{0,5}))?")
_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NUMERIC: Final = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
# Anywhere in the URL: C0 controls, space, DEL and the backslash, which WHATWG strips or
# reads as a separator where other parsers keep them. In the authority also any non-ASCII
# character (WHATWG IDNA-maps them: a fullwidth or ideographic dot is a dot).
_AMBIGUOUS: Final = re.compile(r"[\x00-\x20\x7f\\]")


def url_host(url: str) -> str | None:
    """The host ``url`` points at, lower-case, or None when the URL is not plainly
    ``http(s)://host[:port][/...]`` (see the comments above for what is refused)."""
    if _AMBIGUOUS.search(url):
        return None
    match = _AUTHORITY.match(url)
    if match is None:
        return None
    authority = match.group(1).lower()
    if not authority.isascii() or "@" in authority:
        return None
    parts = _HOST_PORT.fullmatch(authority)
    if parts is None:
        return None
    host, port = parts.group(1), parts.group(2)
    if port is not None and (not port or int(port) > 65535):
        return None
    if host.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            return None
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    if _NUMERIC.fullmatch(labels[-1]):
        # WHATWG reads a host ending in a number as IPv4 (0x7f.1 is 127.0.0.1): only the
        # plain dotted form, which every parser reads alike, is taken.
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            return None
    return host


def image_host_allowed(url: str, hosts: Collection[str]) -> bool:
    """Whether the operator allows images from ``url``'s host: ``hosts`` holds host names,
    ``*.example.com`` (any subdomain of example.com) or ``*`` (any host). A URL whose host
    parsers could read differently (:func:`url_host`) is never allowed."""
    host = url_host(url)
    if host is None:
        return False
    for entry in hosts:
        allowed = entry.strip().lower()
        if allowed in ("*", host):
            return True
        if allowed.startswith("*.") and host.endswith(allowed[1:]):
            return True
    return False
