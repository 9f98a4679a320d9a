"""The server side of one STOMP connection, with no I/O: bytes in, events out, bytes back.

The shell (the socket loop) feeds `receive_data()`, drains `next_event()`, writes what
`accept()`, `message()`, `receipt()` and `error()` return, and drives the clock through
`get_timer()` / `handle_timer(now)`. Nothing here reads a clock or touches a socket.
"""

from __future__ import annotations

import enum
import re
import secrets
import sys
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import (
    Ack,
    ConnectRequested,
    Disconnect,
    Event,
    Headers,
    Nack,
    Send,
    Subscribe,
    Unsubscribe,
)
from ._frame import CLIENT_COMMANDS, HEARTBEAT, VERSIONS, Frame
from ._negotiation import negotiate_heartbeat, negotiate_version, parse_heartbeat
from ._parser import FrameParser
from ._serializer import message_frame, receipt_frame, serialize_frame
from ._states import SessionState, TimerAction

__all__ = ["StompSession"]

_ACK_MODES: Final = {
    "1.0": frozenset({"auto", "client"}),
    "1.1": frozenset({"auto", "client", "client-individual"}),
    "1.2": frozenset({"auto", "client", "client-individual"}),
}
# Headers accept() writes itself; a caller passing them would produce a contradictory frame.
_RESERVED_CONNECTED_HEADERS: Final = frozenset({"version", "heart-beat", "content-length"})
# An ERROR's `message` header is one token: StompProtocolAndroid 1.6.6 matches every header
# line against ([^:\s]+)\s*:\s*([^:\s]+), and a line it cannot match ends its message stream.
_ERROR_CODE: Final = re.compile(r"[^:\s]+")


class _Call(enum.Enum):
    """Inputs from the server code, as opposed to frames from the peer."""

    ACCEPT = "accept"
    ERROR = "error"
    CLOSE = "close_after_disconnect"


class StompSession:
    """One client connection's STOMP state: see the module docstring for the calling pattern."""

    __slots__ = (
        "_accepted",
        "_client_ack",
        "_connect_deadline",
        "_disconnected",
        "_error_headers",
        "_expiry",
        "_grace",
        "_heartbeat",
        "_last_received",
        "_last_sent",
        "_max_frame_size",
        "_max_subscriptions",
        "_parser",
        "_preferred_version",
        "_refused_receipt",
        "_server_heartbeat",
        "_server_name",
        "_state",
        "_subscriptions",
        "_supported_versions",
        "_version",
        "_wire_version",
    )

    def __init__(
        self,
        *,
        now: float,
        server_heartbeat: tuple[int, int] = (10000, 10000),
        connect_timeout: float = 10.0,
        max_frame_size: int = 65536,
        server_name: str = "ieum-chat/0.1",
        supported_versions: tuple[str, ...] = VERSIONS,
        preferred_version: str | None = None,
        max_subscriptions: int = 64,
        max_headers: int = 64,
        heartbeat_grace: float = 2.0,
    ) -> None:
        if not supported_versions or not set(supported_versions) <= set(VERSIONS):
            raise LocalProtocolError(f"supported_versions must be a non-empty subset of {VERSIONS}")
        if preferred_version is not None and preferred_version not in supported_versions:
            raise LocalProtocolError("preferred_version must be one of supported_versions")
        if min(server_heartbeat) < 0 or connect_timeout <= 0 or heartbeat_grace < 1.0:
            raise LocalProtocolError("negative heart-beat, non-positive timeout or grace < 1")
        self._parser = FrameParser(max_frame_size=max_frame_size, max_headers=max_headers)
        self._max_frame_size = max_frame_size
        self._max_subscriptions = max_subscriptions
        self._server_heartbeat = server_heartbeat
        self._server_name = server_name
        self._supported_versions = supported_versions
        self._preferred_version = preferred_version
        self._grace = heartbeat_grace
        self._state = SessionState.AWAITING_CONNECT
        self._version: str | None = None
        # What outgoing frames are escaped for: 1.2 until a version is negotiated, the version
        # most clients speak (an ERROR before CONNECT has to be written somehow).
        self._wire_version = "1.2"
        self._heartbeat = (0, 0)
        self._accepted = False
        self._disconnected = False
        self._error_headers: Headers = ()
        self._refused_receipt: str | None = None
        # Live subscriptions as one flat tuple, id, destination, id, destination...: most
        # sessions hold one, and a dict of one entry takes 200 bytes, this tuple 72.
        self._subscriptions: tuple[str, ...] = ()
        # Most sessions never use client acks: the set comes with the first such subscription.
        self._client_ack: set[str] | None = None
        self._connect_deadline = now + connect_timeout
        self._expiry: float | None = None
        self._last_sent = now
        self._last_received = now

    # -- what the shell reads -------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def version(self) -> str | None:
        """The negotiated version, once the CONNECT frame has been processed."""
        return self._version

    @property
    def heartbeat(self) -> tuple[int, int]:
        """Negotiated (server-to-client ms, client-to-server ms); (0, 0) means none."""
        return self._heartbeat

    @property
    def subscriptions(self) -> Mapping[str, str]:
        """Live subscriptions, id -> destination (a read-only view)."""
        return MappingProxyType(dict(self._subscription_pairs()))

    def _subscription_ids(self) -> tuple[str, ...]:
        return self._subscriptions[::2]

    def _subscription_pairs(self) -> zip[tuple[str, str]]:
        subs = self._subscriptions
        return zip(subs[::2], subs[1::2], strict=True)

    # -- bytes in, events out -------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        if not data:
            return
        # Any byte proves the peer alive (STOMP 1.2 "Heart-beating").
        self._last_received = now
        parser = self._parser
        parser.receive_data(data)
        if self._state is SessionState.CONNECTING and parser.buffered > self._max_frame_size:
            # Frames pipelined behind CONNECT wait for accept(); they must not pile up.
            raise RemoteProtocolError("too much data before CONNECTED")

    def next_event(self) -> Event | None:
        """The next client request, or None when more data is needed.

        While CONNECTING it returns None and leaves later frames buffered until `accept()`.
        Raises RemoteProtocolError for anything the client must be told off for; the shell
        answers with `error(exc.code, body=...)` unless the session is already CLOSED.
        """
        state = self._state
        if state is SessionState.CONNECTING:
            return None
        if self._disconnected:
            # Between DISCONNECT and close_after_disconnect() the session still writes (the
            # receipt, MESSAGEs already on their way) but its reading side is closed.
            state = SessionState.CLOSED
        parser = self._parser
        frame = parser.next_frame()
        while frame is HEARTBEAT:
            frame = parser.next_frame()
        if frame is None:
            return None
        try:
            handler, next_state = _FRAME_TRANSITIONS[state, frame.command]
        except KeyError:
            self._refused_receipt = frame.get("receipt")
            raise self._refusal(frame.command) from None
        try:
            event = handler(self, frame)
        except RemoteProtocolError:
            # STOMP 1.2 "ERROR": an ERROR caused by a frame with `receipt` carries `receipt-id`.
            self._refused_receipt = frame.get("receipt")
            raise
        self._state = next_state
        return event

    def _refusal(self, command: str) -> RemoteProtocolError:
        # The parser let through only [A-Z]{1,32}: the command is safe to name.
        state = self._state
        if command not in CLIENT_COMMANDS:
            return RemoteProtocolError(f"unknown command {command}")
        if self._disconnected:
            return RemoteProtocolError(f"{command} after DISCONNECT")
        if state is SessionState.AWAITING_CONNECT:
            return RemoteProtocolError(f"expected CONNECT or STOMP, got {command}")
        if state is SessionState.CONNECTED:
            return RemoteProtocolError(f"{command} on a session that is already connected")
        return RemoteProtocolError(f"{command} on a closed session")

    # -- frame handlers: see _FRAME_TRANSITIONS -----------------------------------------

    def _on_connect(self, frame: Frame) -> ConnectRequested:
        try:
            version = negotiate_version(
                frame.get("accept-version"), self._supported_versions, self._preferred_version
            )
        except RemoteProtocolError:
            # STOMP 1.2 "Protocol Negotiation": the ERROR frame lists the supported versions.
            self._error_headers = (("version", ",".join(self._supported_versions)),)
            raise
        # 1.0 has no heart-beating: the header, if any, means nothing there.
        heartbeat_header = frame.get("heart-beat") if version != "1.0" else None
        client_heartbeat = parse_heartbeat(heartbeat_header)
        self._version = self._wire_version = version
        self._heartbeat = negotiate_heartbeat(client_heartbeat, self._server_heartbeat)
        return ConnectRequested(
            version=version,
            host=frame.get("host"),
            login=frame.get("login"),
            passcode=frame.get("passcode"),
            heartbeat=client_heartbeat,
            headers=frame.headers,
        )

    def _on_send(self, frame: Frame) -> Send:
        destination = frame.get("destination")
        if not destination:
            raise RemoteProtocolError("SEND without destination")
        _refuse_transaction(frame)
        return Send(
            destination=destination,
            body=frame.body,
            content_type=frame.get("content-type"),
            receipt=frame.get("receipt"),
            headers=frame.headers,
        )

    def _on_subscribe(self, frame: Frame) -> Subscribe:
        destination = frame.get("destination")
        if not destination:
            raise RemoteProtocolError("SUBSCRIBE without destination")
        subscription_id = frame.get("id")
        if not subscription_id:
            # STOMP 1.0 made the id optional; the destination then names the subscription.
            if self._version != "1.0":
                raise RemoteProtocolError("SUBSCRIBE without id")
            subscription_id = destination
        ack = frame.get("ack") or "auto"
        if ack not in _ACK_MODES[self._wire_version]:
            raise RemoteProtocolError("SUBSCRIBE with an invalid ack mode")
        subscriptions = self._subscriptions
        if subscription_id in self._subscription_ids():
            raise RemoteProtocolError("SUBSCRIBE with an id already in use")
        if len(subscriptions) // 2 >= self._max_subscriptions:
            raise RemoteProtocolError(f"more than {self._max_subscriptions} subscriptions")
        # Held as long as the subscription: the sessions that subscribe one topic share one
        # copy of its name, and of the id when clients number theirs alike (stompjs: sub-0).
        destination = sys.intern(destination)
        subscription_id = sys.intern(subscription_id)
        self._subscriptions = (*subscriptions, subscription_id, destination)
        if ack != "auto":
            if self._client_ack is None:
                self._client_ack = set()
            self._client_ack.add(subscription_id)
        return Subscribe(
            id=subscription_id,
            destination=destination,
            ack=ack,
            receipt=frame.get("receipt"),
            headers=frame.headers,
        )

    def _on_unsubscribe(self, frame: Frame) -> Unsubscribe:
        subscription_id = frame.get("id")
        if not subscription_id:
            destination = frame.get("destination") if self._version == "1.0" else None
            if not destination:
                raise RemoteProtocolError("UNSUBSCRIBE without id")
            # STOMP 1.0: unsubscribing by destination.
            subscription_id = self._subscription_for(destination)
        if subscription_id not in self._subscription_ids():
            raise RemoteProtocolError("UNSUBSCRIBE of an unknown subscription")
        self.discard_subscription(subscription_id)
        return Unsubscribe(id=subscription_id, receipt=frame.get("receipt"))

    def _subscription_for(self, destination: str) -> str:
        if destination in self._subscription_ids():
            return destination
        for subscription_id, subscribed in self._subscription_pairs():
            if subscribed == destination:
                return subscription_id
        return destination

    def _ack_id(self, frame: Frame) -> str:
        # STOMP 1.2 acknowledges the MESSAGE's `ack` header as `id`; 1.0 and 1.1 the message-id.
        name = "id" if self._version == "1.2" else "message-id"
        ack_id = frame.get(name)
        if not ack_id:
            raise RemoteProtocolError(f"{frame.command} without {name}")
        _refuse_transaction(frame)
        return ack_id

    def _on_ack(self, frame: Frame) -> Ack:
        return Ack(id=self._ack_id(frame), receipt=frame.get("receipt"))

    def _on_nack(self, frame: Frame) -> Nack:
        if self._version == "1.0":
            raise RemoteProtocolError("NACK does not exist in STOMP 1.0")
        return Nack(id=self._ack_id(frame), receipt=frame.get("receipt"))

    def _on_disconnect(self, frame: Frame) -> Disconnect:
        self._disconnected = True
        return Disconnect(receipt=frame.get("receipt"))

    def _on_transaction(self, frame: Frame) -> Event:
        raise RemoteProtocolError("transactions are not supported")

    # -- bytes back -----------------------------------------------------------------------

    def _after(self, call: _Call) -> SessionState:
        try:
            return _CALL_TRANSITIONS[self._state, call]
        except KeyError:
            raise LocalProtocolError(
                f"{call.value}() is not allowed in state {self._state.name}"
            ) from None

    def accept(self, now: float, headers: Headers = ()) -> bytes:
        """The CONNECTED frame for the pending CONNECT; the session is CONNECTED from `now`.

        `headers` are added to the frame; a `server` or `session` among them replaces the
        default one (the session id is random otherwise).
        """
        next_state = self._after(_Call.ACCEPT)
        version = self._wire_version
        names = {name for name, _ in headers}
        if names & _RESERVED_CONNECTED_HEADERS:
            raise LocalProtocolError("accept() sets version, heart-beat and content-length")
        out: list[tuple[str, str]] = []
        if version != "1.0":
            outgoing, incoming = self._heartbeat
            out += (("version", version), ("heart-beat", f"{outgoing},{incoming}"))
        if "server" not in names:
            out.append(("server", self._server_name))
        if "session" not in names:
            out.append(("session", secrets.token_hex(8)))
        out += headers
        data = serialize_frame(Frame("CONNECTED", tuple(out)), version)
        self._state = next_state
        self._accepted = True
        self._parser.version = version
        self._last_sent = self._last_received = now
        return data

    def message(
        self,
        *,
        destination: str,
        subscription: str,
        message_id: str,
        body: bytes,
        content_type: str = "application/json",
    ) -> bytes:
        """A MESSAGE frame for one subscriber (the fan-out's hot path)."""
        if self._state is not SessionState.CONNECTED:
            raise LocalProtocolError("message() needs a CONNECTED session")
        extra: Headers = ()
        if self._client_ack and subscription in self._client_ack and self._version == "1.2":
            # STOMP 1.2: a client-ack subscription acknowledges the MESSAGE's `ack` header.
            extra = (("ack", message_id),)
        return message_frame(
            destination=destination,
            subscription=subscription,
            message_id=message_id,
            body=body,
            content_type=content_type,
            version=self._wire_version,
            extra_headers=extra,
        )

    def receipt(self, receipt_id: str, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
        """A RECEIPT frame, with ``extra`` headers; also valid after DISCONNECT, which is what
        it confirms."""
        if not self._accepted:
            raise LocalProtocolError("receipt() before the session was accepted")
        return receipt_frame(receipt_id, self._wire_version, extra)

    def error(
        self,
        code: str,
        *,
        body: bytes = b"",
        content_type: str = "application/json",
        receipt_id: str | None = None,
    ) -> bytes:
        """An ERROR frame; the session is CLOSED afterwards (STOMP 1.2 "ERROR").

        `code` becomes the `message` header and must be one token (no whitespace, no colon):
        the words for people go in `body`. `receipt_id` names the frame the ERROR answers; by
        default, the `receipt` of the frame `next_event()` last refused, if it had one.
        """
        if _ERROR_CODE.fullmatch(code) is None:
            raise LocalProtocolError("an ERROR's message header must be one token")
        next_state = self._after(_Call.ERROR)
        if receipt_id is None:
            receipt_id = self._refused_receipt
        headers: list[tuple[str, str]] = [("message", code)]
        if receipt_id is not None:
            headers.append(("receipt-id", receipt_id))
        headers += self._error_headers
        if body:
            headers.append(("content-type", content_type))
        data = serialize_frame(Frame("ERROR", tuple(headers), body), self._wire_version)
        self._state = next_state
        return data

    def close_after_disconnect(self) -> None:
        """DISCONNECT -> CLOSED, once the shell has written the receipt (STOMP 1.2 "DISCONNECT").

        Until then the session stays CONNECTED for writing but refuses any further frame.
        """
        if not self._disconnected:
            raise LocalProtocolError("close_after_disconnect() without a DISCONNECT")
        self._state = self._after(_Call.CLOSE)

    def discard_subscription(self, subscription_id: str) -> None:
        """Forgets a subscription the server refused, so that the client may reuse its id."""
        ids = self._subscription_ids()
        if subscription_id in ids:
            at = 2 * ids.index(subscription_id)
            subs = self._subscriptions
            self._subscriptions = subs[:at] + subs[at + 2 :]
        if self._client_ack is not None:
            self._client_ack.discard(subscription_id)

    # -- timers -----------------------------------------------------------------------------

    def note_sent(self, now: float) -> None:
        """The shell wrote bytes at `now`: the next heart-beat is due an interval later."""
        self._last_sent = now

    def set_expiry(self, at: float | None) -> None:
        """The absolute time (same clock as `now`) the credentials expire; None for never."""
        self._expiry = at

    def get_timer(self) -> float | None:
        """The earliest absolute time `handle_timer()` has something to do, or None."""
        state = self._state
        if state is SessionState.CLOSED:
            return None
        deadline = self._expiry
        if state is not SessionState.CONNECTED:
            candidates = [self._connect_deadline]
        else:
            candidates = [due for due in self._heartbeat_deadlines() if due is not None]
        if deadline is not None:
            candidates.append(deadline)
        return min(candidates, default=None)

    def handle_timer(self, now: float) -> TimerAction | None:
        """What is due at `now`, most serious first; None when nothing is.

        The session does not change state here: after a timeout the shell calls `error()`
        (which closes the session) or drops the connection.
        """
        state = self._state
        if state is SessionState.CLOSED:
            return None
        if state is not SessionState.CONNECTED and now >= self._connect_deadline:
            return TimerAction.CONNECT_TIMEOUT
        if self._expiry is not None and now >= self._expiry:
            return TimerAction.EXPIRED
        if state is SessionState.CONNECTED:
            send_due, peer_due = self._heartbeat_deadlines()
            if peer_due is not None and now >= peer_due:
                return TimerAction.PEER_TIMEOUT
            if send_due is not None and now >= send_due:
                return TimerAction.SEND_HEARTBEAT
        return None

    def _heartbeat_deadlines(self) -> tuple[float | None, float | None]:
        """When our next heart-beat is due and when the peer's window ends (None: no
        heart-beat that way). Worked out from the negotiated pair on each call, not kept:
        two floats an idle session would hold for nothing else."""
        outgoing, incoming = self._heartbeat
        return (
            self._last_sent + outgoing / 1000 if outgoing else None,
            self._last_received + incoming / 1000 * self._grace if incoming else None,
        )


def _refuse_transaction(frame: Frame) -> None:
    if frame.get("transaction") is not None:
        raise RemoteProtocolError("transactions are not supported")


_Handler = Callable[[StompSession, Frame], Event]
_S = SessionState

# The protocol, one (state, client command) pair per row: the handler validates the frame and
# builds the event, then the session moves to the next state. A pair not listed is refused
# with a RemoteProtocolError, whatever it is (SEND before CONNECT, CONNECT twice). Frames
# behind a CONNECT wait in CONNECTING until accept(); frames after DISCONNECT are looked up
# as CLOSED, so all of them are refused.
_FRAME_TRANSITIONS: Final[dict[tuple[SessionState, str], tuple[_Handler, SessionState]]] = {
    (_S.AWAITING_CONNECT, "CONNECT"): (StompSession._on_connect, _S.CONNECTING),
    (_S.AWAITING_CONNECT, "STOMP"): (StompSession._on_connect, _S.CONNECTING),
    (_S.CONNECTED, "SEND"): (StompSession._on_send, _S.CONNECTED),
    (_S.CONNECTED, "SUBSCRIBE"): (StompSession._on_subscribe, _S.CONNECTED),
    (_S.CONNECTED, "UNSUBSCRIBE"): (StompSession._on_unsubscribe, _S.CONNECTED),
    (_S.CONNECTED, "ACK"): (StompSession._on_ack, _S.CONNECTED),
    (_S.CONNECTED, "NACK"): (StompSession._on_nack, _S.CONNECTED),
    (_S.CONNECTED, "BEGIN"): (StompSession._on_transaction, _S.CONNECTED),
    (_S.CONNECTED, "COMMIT"): (StompSession._on_transaction, _S.CONNECTED),
    (_S.CONNECTED, "ABORT"): (StompSession._on_transaction, _S.CONNECTED),
    (_S.CONNECTED, "DISCONNECT"): (StompSession._on_disconnect, _S.CONNECTED),
}

# The server code's own inputs; a pair not listed is a LocalProtocolError (a bug in the shell).
_CALL_TRANSITIONS: Final[dict[tuple[SessionState, _Call], SessionState]] = {
    (_S.CONNECTING, _Call.ACCEPT): _S.CONNECTED,
    (_S.AWAITING_CONNECT, _Call.ERROR): _S.CLOSED,
    (_S.CONNECTING, _Call.ERROR): _S.CLOSED,
    (_S.CONNECTED, _Call.ERROR): _S.CLOSED,
    (_S.CONNECTED, _Call.CLOSE): _S.CLOSED,
    # An error() between DISCONNECT and close_after_disconnect() already closed it.
    (_S.CLOSED, _Call.CLOSE): _S.CLOSED,
}
