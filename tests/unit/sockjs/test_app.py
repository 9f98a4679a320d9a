"""The ASGI app in process (httpx's ASGI transport): URL routing, the session-less URLs,
the polling transports, send errors, CORS, cookies, origins and endpoint refusals."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from ieum_chat.sockjs import (
    Accept,
    Endpoint,
    Handler,
    Rejected,
    Request,
    SessionInfo,
    SockJSApp,
    SockJSOptions,
)
from ieum_chat.sockjs.testing import create_test_server, echo_handler

NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_test_server()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        yield http
    for service in app.services:
        await service.aclose()


async def test_greeting(client: httpx.AsyncClient) -> None:
    for path in ("/echo", "/echo/"):
        r = await client.get(path)
        assert r.status_code == 200
        assert r.text == "Welcome to SockJS!\n"
        assert r.headers["content-type"] == "text/plain; charset=UTF-8"
        assert "set-cookie" not in r.headers


@pytest.mark.parametrize(
    "path",
    ["/echo/a", "/echo/a.html", "/echo//", "/echo/a/a", "/echo/a/a/", "/nothing", "/echoes"],
)
async def test_unknown_urls(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 404


async def test_info(client: httpx.AsyncClient) -> None:
    r = await client.get("/echo/info?token=abc&t=1", headers={"Origin": "http://x"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json; charset=UTF-8"
    assert r.headers["cache-control"] == NO_CACHE
    assert r.headers["access-control-allow-origin"] == "http://x"
    assert r.headers["access-control-allow-credentials"] == "true"
    data = r.json()
    assert data["websocket"] is True
    assert data["cookie_needed"] is False
    assert data["origins"] == ["*:*"]
    assert 0 <= data["entropy"] < 2**32
    assert (await client.get("/disabled_websocket_echo/info")).json()["websocket"] is False
    assert (await client.get("/cookie_needed_echo/info")).json()["cookie_needed"] is True


async def test_preflight(client: httpx.AsyncClient) -> None:
    r = await client.options(
        "/echo/abc/abc/xhr",
        headers={
            "Origin": "null",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "a, b",
        },
    )
    assert r.status_code == 204
    assert r.content == b""
    assert r.headers["access-control-allow-origin"] == "null"
    assert r.headers["access-control-allow-headers"] == "a, b"
    assert "POST" in r.headers["access-control-allow-methods"]
    assert int(r.headers["access-control-max-age"]) >= 1_000_000
    assert "public" in r.headers["cache-control"]
    assert r.headers["expires"]


async def test_iframe_is_cached_with_etag(client: httpx.AsyncClient) -> None:
    r = await client.get("/echo/iframe-0.1.2.html?t=1")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=UTF-8"
    assert "SockJS.bootstrap_iframe();" in r.text
    assert "max-age=31536000" in r.headers["cache-control"]
    assert "last-modified" not in r.headers
    etag = r.headers["etag"]
    again = await client.get("/echo/iframe.html", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert "content-type" not in again.headers
    for bad in ("/echo/iframe.htm", "/echo/IFRAME.HTML", "/echo/iframe-/.html"):
        assert (await client.get(bad)).status_code == 404


async def test_websocket_urls_over_plain_http(client: httpx.AsyncClient) -> None:
    r = await client.get("/echo/0/0/websocket")
    assert r.status_code == 400
    assert r.text == 'Can "Upgrade" only to "WebSocket".'
    r = await client.post("/echo/0/0/websocket")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET"
    assert "content-type" not in r.headers
    assert r.content == b""
    assert (await client.get("/disabled_websocket_echo/0/0/websocket")).status_code == 404


async def test_xhr_polling_session(client: httpx.AsyncClient) -> None:
    url = "/echo/000/session-1"
    r = await client.post(f"{url}/xhr", headers={"Origin": "http://x"})
    assert (r.status_code, r.text) == (200, "o\n")
    assert r.headers["content-type"] == "application/javascript; charset=UTF-8"
    assert r.headers["cache-control"] == NO_CACHE
    assert r.headers["access-control-allow-origin"] == "http://x"
    r = await client.post(f"{url}/xhr_send", content=b'["a","b"]')
    assert (r.status_code, r.content) == (204, b"")
    assert r.headers["content-type"] == "text/plain; charset=UTF-8"
    # The server id is ignored: only the session id names the session.
    r = await client.post("/echo/999/session-1/xhr")
    assert r.text == 'a["a","b"]\n'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "Payload expected."),
        (b'["x', "Broken JSON encoding."),
        (b"[1,2]", "Payload must be a JSON array of strings."),
        (b'{"a":"b"}', "Payload must be a JSON array of strings."),
    ],
)
async def test_bad_xhr_send_bodies(client: httpx.AsyncClient, body: bytes, message: str) -> None:
    url = f"/echo/000/bad-{len(body)}-{body[:1].hex()}"
    assert (await client.post(f"{url}/xhr")).text == "o\n"
    r = await client.post(f"{url}/xhr_send", content=body)
    assert r.status_code == 500
    assert message in r.text
    # The session survives a bad request.
    assert (await client.post(f"{url}/xhr_send", content=b'["ok"]')).status_code == 204
    assert (await client.post(f"{url}/xhr")).text == 'a["ok"]\n'


async def test_send_to_unknown_session(client: httpx.AsyncClient) -> None:
    assert (await client.post("/echo/000/nope/xhr_send", content=b'["x"]')).status_code == 404
    assert (await client.post("/echo/000/nope/jsonp_send", content=b'["x"]')).status_code == 404


@pytest.mark.parametrize("path", ["/echo/a./a/xhr", "/echo/a/a./xhr", "/echo/a/a/nope"])
async def test_bad_session_urls(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.post(path)).status_code == 404


async def test_wrong_method(client: httpx.AsyncClient) -> None:
    r = await client.get("/echo/000/m/xhr")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"


async def test_jsonp_session(client: httpx.AsyncClient) -> None:
    url = "/echo/000/jsonp-1"
    r = await client.get(f"{url}/jsonp?c=%63allback")
    assert r.text == '/**/callback("o");\r\n'
    r = await client.post(
        f"{url}/jsonp_send",
        content=b"d=%5B%22x%22%5D",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (r.status_code, r.text) == (200, "ok")
    r = await client.get(f"{url}/jsonp?c=callback")
    assert r.text == '/**/callback("a[\\"x\\"]");\r\n'
    for bad in ("%20", "*", "abc(", "abc%28"):
        r = await client.get(f"/echo/a/a/jsonp?c={bad}")
        assert r.status_code == 500
        assert 'invalid "callback" parameter' in r.text
    r = await client.get("/echo/a/a/htmlfile")
    assert r.status_code == 500
    assert '"callback" parameter required' in r.text


async def test_close_service_repeats_its_close_frame(client: httpx.AsyncClient) -> None:
    url = "/close/000/c-1"
    assert (await client.post(f"{url}/xhr")).text == "o\n"
    for _ in range(2):
        assert (await client.post(f"{url}/xhr")).text == 'c[3000,"Go away!"]\n'


async def test_jsessionid_cookie(client: httpx.AsyncClient) -> None:
    r = await client.post("/cookie_needed_echo/000/k-1/xhr")
    assert r.headers["set-cookie"] == "JSESSIONID=dummy; Path=/; HttpOnly; SameSite=Lax"
    client.cookies.set("JSESSIONID", "abcdef")
    r = await client.post("/cookie_needed_echo/000/k-2/xhr")
    assert r.headers["set-cookie"] == "JSESSIONID=abcdef; Path=/; HttpOnly; SameSite=Lax"
    r = await client.post("/echo/000/k-3/xhr")
    assert "set-cookie" not in r.headers


async def test_request_body_is_bounded() -> None:
    app = SockJSApp(_accept(echo_handler), options=SockJSOptions(max_request_body=16))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        assert (await client.post("/0/s/xhr")).text == "o\n"
        r = await client.post("/0/s/xhr_send", content=json.dumps(["x" * 100]).encode())
        assert r.status_code == 413
    await app.aclose()


async def test_origins_can_be_narrowed() -> None:
    options = SockJSOptions(allowed_origins=("https://app.example",))
    app = SockJSApp(_accept(echo_handler), options=options)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        ok = await client.post("/0/s/xhr", headers={"Origin": "https://app.example"})
        assert ok.text == "o\n"
        refused = await client.post("/0/t/xhr", headers={"Origin": "https://evil.example"})
        assert refused.status_code == 403
        assert (await client.get("/info", headers={"Origin": "https://evil"})).status_code == 403
        assert (await client.post("/0/u/xhr")).status_code == 200  # no Origin: not a browser
    await app.aclose()


async def test_endpoint_refusal_is_the_http_answer() -> None:
    seen: list[SessionInfo] = []

    async def endpoint(info: SessionInfo) -> Handler:
        seen.append(info)
        if info.request.query.get("token") != "good":
            raise Rejected(401, b'{"code":"AUTH_FAILED"}', content_type="application/json")
        return echo_handler

    app = SockJSApp(endpoint, prefix="/ws/chat")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        r = await client.post("/ws/chat/0/s/xhr?token=bad")
        assert r.status_code == 401
        assert r.json() == {"code": "AUTH_FAILED"}
        assert (await client.post("/ws/chat/0/s/xhr_send", content=b'["x"]')).status_code == 404
        assert (await client.post("/ws/chat/0/s/xhr?token=good")).text == "o\n"
        assert (await client.get("/ws/chat")).text == "Welcome to SockJS!\n"
        assert (await client.get("/elsewhere")).status_code == 404
    assert [(i.transport, i.session_id) for i in seen] == [
        ("xhr-polling", "s"),
        ("xhr-polling", "s"),
    ]
    assert seen[1].query == {"token": "good"}
    await app.aclose()


async def test_an_accepted_session_asks_its_check_on_every_later_request() -> None:
    asked: list[str | None] = []

    async def check(request: Request) -> bool:
        asked.append(request.query.get("who"))
        return request.query.get("who") == "owner"

    async def endpoint(info: SessionInfo) -> Accept:
        return Accept(echo_handler, check)

    app = SockJSApp(endpoint, prefix="/ws/chat")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        assert (await client.post("/ws/chat/0/s/xhr?who=owner")).text == "o\n"
        for who in ("", "?who=other"):
            r = await client.post(f"/ws/chat/0/s/xhr_send{who}", content=b'["x"]')
            assert (r.status_code, r.text) == (404, "No such session.")
            assert (await client.post(f"/ws/chat/0/s/xhr{who}")).status_code == 404
        r = await client.post("/ws/chat/0/s/xhr_send?who=owner", content=b'["x"]')
        assert r.status_code == 204
        assert (await client.post("/ws/chat/0/s/xhr?who=owner")).text == 'a["x"]\n'
    # The creating request is the endpoint's to judge; every later one is the check's.
    assert asked == [None, None, "other", "other", "owner", "owner"]
    await app.aclose()


def _accept(handler: Handler) -> Endpoint:
    async def endpoint(info: SessionInfo) -> Handler:
        return handler

    return endpoint


def test_route_path_follows_starlette_mounts() -> None:
    from ieum_chat.sockjs._http import route_path

    assert route_path({"path": "/ws/chat/info", "root_path": ""}) == "/ws/chat/info"
    assert route_path({"path": "/ws/chat/info", "root_path": "/ws/chat"}) == "/info"
    assert route_path({"path": "/ws/chat", "root_path": "/ws/chat"}) == ""
    assert route_path({"path": "/ws/chatter", "root_path": "/ws/chat"}) == "/ws/chatter"


async def test_mounted_below_a_root_path() -> None:
    app = SockJSApp(_accept(echo_handler))
    transport = httpx.ASGITransport(app=app, root_path="/ws/chat")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/ws/chat/")).text == "Welcome to SockJS!\n"
        assert (await client.post("/ws/chat/0/s/xhr")).text == "o\n"
    await app.aclose()
