"""The opening handshake: request heads as real clients write them, every refusal status,
head_length limits, and the 101 answer (RFC 6455 §4.2, RFC 9112)."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from websockets.utils import accept_key as websockets_accept_key

from ieum_chat.websocket import (
    MAX_HEAD,
    HandshakeError,
    UpgradeRequest,
    accept_response,
    head_length,
    http_response,
    parse_request,
    validate_upgrade,
)

# §1.3 works this example through: the SHA-1 is b37a4f2c...b2bec4ea, base64 "s3pP...xOo=".
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
RFC_SHA1 = "b37a4f2cc0624f1690f64606cf385945b2bec4ea"


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


CHROME = head(
    "GET /ws/chat?token=abc HTTP/1.1",
    "Host: chat.example.com",
    "Connection: Upgrade",
    "Pragma: no-cache",
    "Cache-Control: no-cache",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Upgrade: websocket",
    "Origin: https://chat.example.com",
    "Sec-WebSocket-Version: 13",
    "Accept-Encoding: gzip, deflate, br, zstd",
    "Accept-Language: ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7",
    f"Sec-WebSocket-Key: {RFC_KEY}",
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    "Sec-WebSocket-Protocol: v12.stomp, v11.stomp, v10.stomp",
)
FIREFOX = head(
    "GET /ws/chat HTTP/1.1",
    "Host: localhost:8000",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Accept: */*",
    "Accept-Language: ko-KR,ko;q=0.8,en-US;q=0.5,en;q=0.3",
    "Accept-Encoding: gzip, deflate, br",
    "Sec-WebSocket-Version: 13",
    "Origin: http://localhost:8000",
    "Sec-WebSocket-Protocol: v12.stomp",
    "Sec-WebSocket-Protocol: v11.stomp",
    "Sec-WebSocket-Extensions: permessage-deflate",
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==",
    "DNT: 1",
    "Connection: keep-alive, Upgrade",
    "Sec-Fetch-Dest: empty",
    "Sec-Fetch-Mode: websocket",
    "Sec-Fetch-Site: same-origin",
    "Pragma: no-cache",
    "Cache-Control: no-cache",
    "Upgrade: websocket",
)
SAFARI = head(
    "GET /ws/chat HTTP/1.1",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Host: chat.example.com",
    "Origin: https://chat.example.com",
    "Pragma: no-cache",
    "Cache-Control: no-cache",
    "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Extensions: x-webkit-deflate-frame",
    "User-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
)
OKHTTP = head(
    "GET /ws/chat HTTP/1.1",
    "Host: 10.0.2.2:8000",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: 7Y8v3mzEJnMJ2Z2bQ9uUwA==",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Protocol: v12.stomp",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig",
    "Accept-Encoding: gzip",
    "User-Agent: okhttp/4.12.0",
)
WEBSOCKET_CLIENT = head(  # Python websocket-client
    "GET /ws/chat HTTP/1.1",
    "Upgrade: websocket",
    "Host: localhost:8000",
    "Origin: http://localhost:8000",
    "Sec-WebSocket-Key: q4xkcO32u266gldTuKaSOw==",
    "Sec-WebSocket-Version: 13",
    "Connection: Upgrade",
)
NODE_WS = head(
    "GET /ws/chat HTTP/1.1",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: Ky8RZ5QlCTNaMtv0tK1u3g==",
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    "Sec-WebSocket-Protocol: v12.stomp,v11.stomp",
    "Host: 127.0.0.1:8000",
)
LOWER_CASE = head(  # as a proxy that lower-cases names (HTTP/2 habit) forwards it
    "GET /ws/chat HTTP/1.1",
    "host: chat.example.com",
    "upgrade: WebSocket",
    "connection: upgrade",
    "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
    "sec-websocket-version: 13",
    "x-forwarded-for: 203.0.113.7",
)
SHOUTING = head(
    "GET /ws/chat HTTP/1.1",
    "HOST:chat.example.com",
    "UPGRADE:   WEBSOCKET  ",
    "CONNECTION: Keep-Alive,UPGRADE",
    "SEC-WEBSOCKET-KEY:\tdGhlIHNhbXBsZSBub25jZQ==\t",
    "SEC-WEBSOCKET-VERSION: 13",
)

CLIENTS = {
    "chrome": (CHROME, RFC_KEY, ["v12.stomp", "v11.stomp", "v10.stomp"]),
    "firefox": (FIREFOX, "x3JJHMbDL1EzLkh9GBhXDw==", ["v12.stomp", "v11.stomp"]),
    "safari": (SAFARI, "AQIDBAUGBwgJCgsMDQ4PEA==", []),
    "okhttp": (OKHTTP, "7Y8v3mzEJnMJ2Z2bQ9uUwA==", ["v12.stomp"]),
    "websocket-client": (WEBSOCKET_CLIENT, "q4xkcO32u266gldTuKaSOw==", []),
    "node-ws": (NODE_WS, "Ky8RZ5QlCTNaMtv0tK1u3g==", ["v12.stomp", "v11.stomp"]),
    "lower-case": (LOWER_CASE, RFC_KEY, []),
    "shouting": (SHOUTING, RFC_KEY, []),
}


@pytest.mark.parametrize("client", CLIENTS)
def test_real_clients_are_accepted(client: str) -> None:
    data, key, subprotocols = CLIENTS[client]
    assert head_length(data + b"\x81\x85") == len(data)
    request = parse_request(data)
    assert request.method == "GET"
    assert request.http_version == "1.1"
    assert request.is_upgrade
    assert request.subprotocols == subprotocols
    assert validate_upgrade(request) == key


def test_parsed_fields() -> None:
    request = parse_request(CHROME)
    assert request.target == "/ws/chat?token=abc"
    assert request.path == "/ws/chat"
    assert request.query == "token=abc"
    assert request.header("host") == "chat.example.com"
    assert request.header("sec-websocket-extensions") == (
        "permessage-deflate; client_max_window_bits"
    )
    assert request.header("missing") is None
    assert request.headers[:2] == (("host", "chat.example.com"), ("connection", "Upgrade"))
    assert len(request.headers) == 13


def test_header_values_are_stripped_and_names_lowered() -> None:
    request = parse_request(SHOUTING)
    assert request.header("upgrade") == "WEBSOCKET"
    assert request.header("sec-websocket-key") == RFC_KEY
    assert request.header("HOST") is None


def test_first_value_wins_and_all_values_are_kept() -> None:
    request = parse_request(FIREFOX)
    assert request.header("sec-websocket-protocol") == "v12.stomp"
    assert request.header_values("sec-websocket-protocol") == ["v12.stomp", "v11.stomp"]


def test_target_without_query_and_percent_encoding_kept() -> None:
    request = parse_request(head("GET /ws/%EC%B1%84%ED%8C%85 HTTP/1.1", "Host: h"))
    assert (request.path, request.query) == ("/ws/%EC%B1%84%ED%8C%85", "")
    request = parse_request(head("GET /ws?a=1?b HTTP/1.1", "Host: h"))
    assert (request.path, request.query) == ("/ws", "a=1?b")


def test_latin1_header_value() -> None:
    request = parse_request(b"GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xe9\r\n\r\n")
    assert request.header("x-name") == "café"


def test_head_without_its_terminator_is_parsed_too() -> None:
    assert parse_request(b"GET / HTTP/1.1\r\nHost: h").headers == (("host", "h"),)


def test_subprotocols_drop_empty_items() -> None:
    request = parse_request(
        head("GET / HTTP/1.1", "Sec-WebSocket-Protocol: , a ,,b", "Sec-WebSocket-Protocol:")
    )
    assert request.subprotocols == ["a", "b"]


@pytest.mark.parametrize(
    ("upgrade", "connection", "expected"),
    [
        ("websocket", "Upgrade", True),
        ("WebSocket", "keep-alive, Upgrade", True),
        ("h2c, websocket", "upgrade,keep-alive", True),
        ("websocket", "keep-alive", False),
        ("h2c", "Upgrade", False),
        ("websockets", "Upgrade", False),
        ("websocket", "Upgraded", False),
        (None, "Upgrade", False),
        ("websocket", None, False),
    ],
)
def test_is_upgrade(upgrade: str | None, connection: str | None, expected: bool) -> None:
    headers = [("host", "h")]
    if upgrade is not None:
        headers.append(("upgrade", upgrade))
    if connection is not None:
        headers.append(("connection", connection))
    request = UpgradeRequest("GET", "/", "/", "", "1.1", tuple(headers))
    assert request.is_upgrade is expected


def test_is_upgrade_across_repeated_headers() -> None:
    request = parse_request(
        head(
            "GET / HTTP/1.1", "Connection: keep-alive", "Connection: Upgrade", "Upgrade: websocket"
        )
    )
    assert request.is_upgrade


# -- head_length ---------------------------------------------------------------------------------


def test_head_length_of_partial_heads() -> None:
    for end in range(len(OKHTTP)):
        assert head_length(OKHTTP[:end]) is None
    assert head_length(bytearray(OKHTTP)) == len(OKHTTP)


def test_head_length_finds_the_first_blank_line() -> None:
    assert head_length(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n\r\n\r\n") == 27


def test_head_length_limit() -> None:
    filler = b"GET / HTTP/1.1\r\nX: " + b"a" * 100
    assert head_length(filler, limit=200) is None
    exact = filler + b"\r\n\r\n"
    assert head_length(exact, limit=len(exact)) == len(exact)
    with pytest.raises(HandshakeError) as info:
        head_length(exact, limit=len(exact) - 1)
    assert info.value.status == 431
    with pytest.raises(HandshakeError) as info:
        head_length(filler + b"a" * 100, limit=200)
    assert info.value.status == 431


def test_head_length_default_limit() -> None:
    big = b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD
    assert MAX_HEAD == 16384
    assert head_length(big[: MAX_HEAD - 1]) is None
    with pytest.raises(HandshakeError) as info:
        head_length(big)
    assert info.value.status == 431


# -- malformed heads (400 from parse_request) -----------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET / http/1.1\r\n\r\n",
        b"GET / HTTP/11\r\n\r\n",
        b"GET /a b HTTP/1.1\r\n\r\n",
        b"GET /caf\xe9 HTTP/1.1\r\n\r\n",
        b"G(T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
        b"GET / HTTP/1.1\r\n: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHo(st: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\x00\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\x7f\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\nX: late\r\n\r\n",
    ],
)
def test_malformed_heads(data: bytes) -> None:
    with pytest.raises(HandshakeError) as info:
        parse_request(data)
    assert info.value.status == 400
    assert info.value.headers == ()


@pytest.mark.parametrize("fold", [b" ", b"\t"])
def test_obs_fold_is_refused(fold: bytes) -> None:
    with pytest.raises(HandshakeError, match="folding") as info:
        parse_request(b"GET / HTTP/1.1\r\nX-Long: a\r\n" + fold + b"b\r\nHost: h\r\n\r\n")
    assert info.value.status == 400


def test_refusal_message_does_not_quote_the_request() -> None:
    with pytest.raises(HandshakeError) as info:
        parse_request(b"GET / HTTP/1.1\r\nsecret-token-abc\r\n\r\n")
    assert "secret" not in info.value.message


# -- refusals (validate_upgrade) ------------------------------------------------------------------

VALID = [
    "GET /ws HTTP/1.1",
    "Host: h",
    "Upgrade: websocket",
    "Connection: Upgrade",
    f"Sec-WebSocket-Key: {RFC_KEY}",
    "Sec-WebSocket-Version: 13",
]


def with_lines(*replace: tuple[str, str | None], extra: tuple[str, ...] = ()) -> UpgradeRequest:
    """VALID with the line starting with each prefix replaced (or removed, for None)."""
    lines = list(VALID)
    for prefix, line in replace:
        index = next(i for i, old in enumerate(lines) if old.startswith(prefix))
        if line is None:
            del lines[index]
        else:
            lines[index] = line
    return parse_request(head(*lines, *extra))


def refusal(request: UpgradeRequest) -> HandshakeError:
    with pytest.raises(HandshakeError) as info:
        validate_upgrade(request)
    return info.value


def test_the_valid_request_is_valid() -> None:
    assert validate_upgrade(with_lines()) == RFC_KEY


@pytest.mark.parametrize("method", ["POST", "HEAD", "get", "CONNECT"])
def test_not_get_is_405(method: str) -> None:
    error = refusal(with_lines(("GET", f"{method} /ws HTTP/1.1")))
    assert error.status == 405
    assert ("Allow", "GET") in error.headers


@pytest.mark.parametrize("version", ["1.0", "0.9"])
def test_older_http_is_400(version: str) -> None:
    assert refusal(with_lines(("GET", f"GET /ws HTTP/{version}"))).status == 400


def test_later_http_1_minor_versions_are_accepted() -> None:
    # RFC 6455 §4.2.1 item 1: "HTTP/1.1 or higher".
    assert validate_upgrade(with_lines(("GET", "GET /ws HTTP/1.2"))) == RFC_KEY


@pytest.mark.parametrize(
    ("replace", "extra"),
    [
        (("Host", None), ()),
        (("Host", "Host: a"), ("Host: b",)),
        (("Upgrade", None), ()),
        (("Upgrade", "Upgrade: h2c"), ()),
        (("Connection", None), ()),
        (("Connection", "Connection: keep-alive"), ()),
        (("Sec-WebSocket-Key", None), ()),
        (("Sec-WebSocket-Key", "Sec-WebSocket-Key: "), ()),
        (("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ"), ()),
        (("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZSE="), ()),
        (("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j"), ()),
        (("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ!=="), ()),
        (("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==="), ()),
        (("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ\xe9=="), ()),
        (("Host", "Host: h"), (f"Sec-WebSocket-Key: {RFC_KEY}",)),
        (("Host", "Host: h"), ("Content-Length: 5",)),
        (("Host", "Host: h"), ("Transfer-Encoding: chunked",)),
    ],
)
def test_bad_requests_are_400(replace: tuple[str, str | None], extra: tuple[str, ...]) -> None:
    error = refusal(with_lines(replace, extra=extra))
    assert error.status == 400
    assert error.headers == ()


def test_empty_content_length_is_no_body() -> None:
    assert validate_upgrade(with_lines(extra=("Content-Length: 0",))) == RFC_KEY


@pytest.mark.parametrize("version", [None, "8", "7", "13, 8", "", "14"])
def test_other_versions_are_426(version: str | None) -> None:
    line = None if version is None else f"Sec-WebSocket-Version: {version}"
    error = refusal(with_lines(("Sec-WebSocket-Version", line)))
    assert error.status == 426
    assert ("Sec-WebSocket-Version", "13") in error.headers


def test_repeated_version_is_426() -> None:
    error = refusal(with_lines(extra=("Sec-WebSocket-Version: 13",)))
    assert error.status == 426


def test_checks_run_in_the_rfc_order() -> None:
    # §4.2.1 lists method, Host, Upgrade, Connection, key, version in this order.
    request = parse_request(head("POST /ws HTTP/1.0"))
    assert refusal(request).status == 405
    request = parse_request(head("GET /ws HTTP/1.1", "Host: h", "Sec-WebSocket-Version: 8"))
    assert refusal(request).status == 400


# -- responses ------------------------------------------------------------------------------------


def test_rfc_accept_key() -> None:
    assert accept_response(RFC_KEY, None) == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"\r\n"
    )
    assert base64.b64decode(RFC_ACCEPT).hex() == RFC_SHA1


@pytest.mark.parametrize("client", CLIENTS)
def test_accept_matches_an_independent_implementation(client: str) -> None:
    key = validate_upgrade(parse_request(CLIENTS[client][0]))
    expected = f"Sec-WebSocket-Accept: {websockets_accept_key(key)}\r\n".encode()
    assert expected in accept_response(key, None)


def test_accept_with_subprotocol() -> None:
    response = accept_response(RFC_KEY, "v12.stomp")
    assert response.endswith(b"Sec-WebSocket-Protocol: v12.stomp\r\n\r\n")
    assert head_length(response) == len(response)


@pytest.mark.parametrize("subprotocol", ["", "a b", "v12.stomp\r\nX-Evil: 1", "a,b"])
def test_subprotocol_must_be_a_token(subprotocol: str) -> None:
    with pytest.raises(ValueError, match="token"):
        accept_response(RFC_KEY, subprotocol)


def test_http_response() -> None:
    assert http_response(400, b'{"error":"bad"}') == (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: 15\r\n"
        b"Connection: close\r\n"
        b'\r\n{"error":"bad"}'
    )


def _refused(check: Callable[[], object]) -> HandshakeError:
    with pytest.raises(HandshakeError) as info:
        check()
    return info.value


REFUSALS: dict[int, Callable[[], object]] = {
    400: lambda: validate_upgrade(with_lines(("Host", None))),
    405: lambda: validate_upgrade(with_lines(("GET", "PUT /ws HTTP/1.1"))),
    426: lambda: validate_upgrade(
        with_lines(("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"))
    ),
    431: lambda: head_length(b"x" * MAX_HEAD),
}


@pytest.mark.parametrize("status", sorted(REFUSALS))
def test_http_response_for_every_refusal(status: int) -> None:
    error = _refused(REFUSALS[status])
    assert error.status == status
    response = http_response(
        error.status, error.message.encode(), content_type="text/plain", headers=error.headers
    )
    length = head_length(response)
    assert length is not None
    status_line, *lines = response[: length - 4].decode().split("\r\n")
    assert status_line.startswith(f"HTTP/1.1 {status} ")
    fields = dict(line.split(": ", 1) for line in lines)
    assert fields["Content-Type"] == "text/plain"
    assert fields["Content-Length"] == str(len(error.message))
    assert "close" in fields["Connection"]
    for name, value in error.headers:
        assert fields[name] == value
    assert response[length:] == error.message.encode()


def test_426_announces_the_upgrade_in_connection() -> None:
    # RFC 9110 §15.5.22 and §7.8: a 426 sends Upgrade, and Upgrade is listed in Connection.
    error = refusal(with_lines(("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8")))
    response = http_response(426, b"", headers=error.headers)
    assert b"\r\nUpgrade: websocket\r\n" in response
    assert b"\r\nConnection: Upgrade, close\r\n" in response


@pytest.mark.parametrize(
    "headers",
    [
        [("Content-Length", "1")],
        [("connection", "keep-alive")],
        [("Content-Type", "text/html")],
        [("Bad Name", "x")],
        [("X-Evil", "a\r\nSet-Cookie: x")],
    ],
)
def test_http_response_refuses_headers_it_cannot_write(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError, match=r"header|writes"):
        http_response(400, b"", headers=headers)


def test_http_response_refuses_unknown_status_and_bad_content_type() -> None:
    with pytest.raises(ValueError, match="599"):
        http_response(599, b"")
    with pytest.raises(ValueError, match="content type"):
        http_response(400, b"", content_type="text/plain\r\nX: y")
