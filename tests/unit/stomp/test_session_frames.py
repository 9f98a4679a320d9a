"""StompSession SUBSCRIBE, UNSUBSCRIBE, SEND, ACK and NACK."""

from __future__ import annotations

import pytest

from ieum_chat.stomp import (
    Ack,
    Nack,
    Send,
    Subscribe,
    Unsubscribe,
)

from ._support import connect, feed, frame, refusal

# -- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------------------------------


def test_subscribe_event() -> None:
    session = connect()
    event = feed(
        session,
        frame(
            "SUBSCRIBE",
            ("id", "sub-0"),
            ("destination", "/topic/couple/1"),
            ("receipt", "r1"),
            ("x-resume-after-seq", "5"),
        ),
    )
    assert event == Subscribe(
        id="sub-0",
        destination="/topic/couple/1",
        ack="auto",
        receipt="r1",
        headers=(
            ("id", "sub-0"),
            ("destination", "/topic/couple/1"),
            ("receipt", "r1"),
            ("x-resume-after-seq", "5"),
        ),
    )
    assert dict(session.subscriptions) == {"sub-0": "/topic/couple/1"}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ((("destination", "/a"),), "SUBSCRIBE without id"),
        ((("id", ""), ("destination", "/a")), "SUBSCRIBE without id"),
        ((("id", "1"),), "SUBSCRIBE without destination"),
        ((("id", "1"), ("destination", "")), "SUBSCRIBE without destination"),
        ((("id", "1"), ("destination", "/a"), ("ack", "sometimes")), "invalid ack mode"),
    ],
)
def test_subscribe_refusals(headers: tuple[tuple[str, str], ...], message: str) -> None:
    assert message in refusal(connect(), frame("SUBSCRIBE", *headers))


def test_subscribe_10_id_defaults_to_destination() -> None:
    session = connect("1.0")
    event = feed(session, frame("SUBSCRIBE", ("destination", "/a")))
    assert isinstance(event, Subscribe)
    assert event.id == "/a"
    event = feed(session, frame("UNSUBSCRIBE", ("destination", "/a")))
    assert event == Unsubscribe(id="/a", receipt=None)
    assert not session.subscriptions


def test_unsubscribe_10_by_destination_of_an_explicit_id() -> None:
    session = connect("1.0")
    feed(session, frame("SUBSCRIBE", ("id", "s1"), ("destination", "/a")))
    assert feed(session, frame("UNSUBSCRIBE", ("destination", "/a"))) == Unsubscribe("s1", None)


def test_client_individual_is_not_a_10_ack_mode() -> None:
    session = connect("1.0")
    headers = (("destination", "/a"), ("ack", "client-individual"))
    assert "invalid ack mode" in refusal(session, frame("SUBSCRIBE", *headers))


@pytest.mark.parametrize("ack", ["auto", "client", "client-individual"])
def test_ack_modes(ack: str) -> None:
    session = connect()
    event = feed(session, frame("SUBSCRIBE", ("id", "1"), ("destination", "/a"), ("ack", ack)))
    assert isinstance(event, Subscribe)
    assert event.ack == ack


def test_duplicate_subscription_id() -> None:
    session = connect()
    feed(session, frame("SUBSCRIBE", ("id", "1"), ("destination", "/a")))
    message = refusal(session, frame("SUBSCRIBE", ("id", "1"), ("destination", "/b")))
    assert message == "SUBSCRIBE with an id already in use"


def test_subscription_limit() -> None:
    session = connect(max_subscriptions=3)
    for index in range(3):
        feed(session, frame("SUBSCRIBE", ("id", str(index)), ("destination", "/a")))
    message = refusal(session, frame("SUBSCRIBE", ("id", "3"), ("destination", "/a")))
    assert message == "more than 3 subscriptions"


def test_unsubscribe_frees_the_id_and_the_slot() -> None:
    session = connect(max_subscriptions=1)
    feed(session, frame("SUBSCRIBE", ("id", "1"), ("destination", "/a")))
    event = feed(session, frame("UNSUBSCRIBE", ("id", "1"), ("receipt", "r")))
    assert event == Unsubscribe(id="1", receipt="r")
    assert isinstance(
        feed(session, frame("SUBSCRIBE", ("id", "1"), ("destination", "/b"))), Subscribe
    )


def test_unsubscribing_one_of_several_keeps_the_others() -> None:
    """Ids and destinations are told apart: an id may read like another's destination."""
    session = connect()
    for sub_id, destination in (("1", "/a"), ("/a", "/b"), ("3", "/c")):
        feed(session, frame("SUBSCRIBE", ("id", sub_id), ("destination", destination)))
    assert feed(session, frame("UNSUBSCRIBE", ("id", "/a"))) == Unsubscribe(id="/a", receipt=None)
    assert dict(session.subscriptions) == {"1": "/a", "3": "/c"}
    message = refusal(session, frame("UNSUBSCRIBE", ("id", "/b")))
    assert message == "UNSUBSCRIBE of an unknown subscription"


def test_discard_subscription_lets_the_client_reuse_the_id() -> None:
    session = connect()
    feed(session, frame("SUBSCRIBE", ("id", "1"), ("destination", "/a")))
    session.discard_subscription("1")
    session.discard_subscription("never-existed")
    assert not session.subscriptions
    assert isinstance(
        feed(session, frame("SUBSCRIBE", ("id", "1"), ("destination", "/a"))), Subscribe
    )


@pytest.mark.parametrize(
    ("version", "headers", "message"),
    [
        ("1.2", (), "UNSUBSCRIBE without id"),
        ("1.2", (("destination", "/a"),), "UNSUBSCRIBE without id"),
        ("1.0", (), "UNSUBSCRIBE without id"),
        ("1.2", (("id", "nope"),), "UNSUBSCRIBE of an unknown subscription"),
        ("1.0", (("destination", "/nope"),), "UNSUBSCRIBE of an unknown subscription"),
    ],
)
def test_unsubscribe_refusals(
    version: str, headers: tuple[tuple[str, str], ...], message: str
) -> None:
    session = connect(version)
    feed(session, frame("SUBSCRIBE", ("id", "1"), ("destination", "/a")))
    assert refusal(session, frame("UNSUBSCRIBE", *headers)) == message


# -- SEND, ACK, NACK ----------------------------------------------------------------------------


def test_send_event() -> None:
    session = connect()
    body = b'{"type":"TEXT","content":"hi\\u0000"}'
    event = feed(
        session,
        frame(
            "SEND",
            ("destination", "/app/chat/1"),
            ("content-type", "application/json"),
            ("receipt", "r-9"),
            ("content-length", str(len(body))),
            body=body,
        ),
    )
    assert isinstance(event, Send)
    assert event.destination == "/app/chat/1"
    assert event.body == body
    assert event.content_type == "application/json"
    assert event.receipt == "r-9"
    assert event.headers[0] == ("destination", "/app/chat/1")


def test_send_without_content_type_or_receipt() -> None:
    event = feed(connect("1.0"), frame("SEND", ("destination", "/a"), body=b"x"))
    assert event == Send("/a", b"x", None, None, (("destination", "/a"),))


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ((), "SEND without destination"),
        ((("destination", ""),), "SEND without destination"),
        ((("destination", "/a"), ("transaction", "t")), "transactions are not supported"),
    ],
)
def test_send_refusals(headers: tuple[tuple[str, str], ...], message: str) -> None:
    assert refusal(connect(), frame("SEND", *headers)) == message


@pytest.mark.parametrize(
    ("version", "header"), [("1.0", "message-id"), ("1.1", "message-id"), ("1.2", "id")]
)
def test_ack_id_header_per_version(version: str, header: str) -> None:
    session = connect(version)
    assert feed(session, frame("ACK", (header, "m1"), ("receipt", "r"))) == Ack("m1", "r")
    other = "id" if header == "message-id" else "message-id"
    assert refusal(session, frame("ACK", (other, "m1"))) == f"ACK without {header}"


@pytest.mark.parametrize(("version", "header"), [("1.1", "message-id"), ("1.2", "id")])
def test_nack(version: str, header: str) -> None:
    session = connect(version)
    assert feed(session, frame("NACK", (header, "m1"))) == Nack("m1", None)
    assert refusal(session, frame("NACK")) == f"NACK without {header}"


def test_nack_does_not_exist_in_10() -> None:
    message = refusal(connect("1.0"), frame("NACK", ("message-id", "m")))
    assert message == "NACK does not exist in STOMP 1.0"


def test_ack_in_a_transaction() -> None:
    message = refusal(connect(), frame("ACK", ("id", "m"), ("transaction", "t")))
    assert message == "transactions are not supported"
