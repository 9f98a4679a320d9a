"""Threat: cookie injection through the sticky-session cookie. With
``IEUM_SOCKJS_COOKIE_NEEDED=true`` the SockJS service sets ``JSESSIONID`` for load balancers,
echoing the client's own value (SockJS 0.3); a quoted value such as
``"a; Domain=evil.example"`` was echoed whole, so a page that can plant one cookie could widen
it to other hosts, and the cookie went out without HttpOnly, Secure or SameSite.

Refused by: ``sockjs._http.cookie_headers`` echoes only values of a safe token charset (any
other gets the default ``dummy``) and sets ``Path=/; HttpOnly; SameSite=Lax``, plus ``Secure``
behind TLS (the request's scheme, or ``X-Forwarded-Proto: https`` from the proxy), where a
cross-site page needs ``SameSite=None; Secure`` to keep its sticky session.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.api.conftest import Api


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"sockjs_cookie_needed": True}


async def set_cookie(api: Api, session: str, **headers: str) -> str:
    response = await api.client.post(f"/ws/chat/000/{session}/xhr", headers=headers)
    assert response.status_code == 200
    value: str = response.headers["set-cookie"]
    return value


@pytest.mark.parametrize(
    "planted",
    [
        '"a; Domain=evil.example"',
        '"a\\073 Domain=evil.example"',
        '"a,b"',
        "a%3B%20Domain%3Devil.example",
        "x" * 300,
    ],
)
async def test_unsafe_values_are_not_echoed(api: Api, planted: str) -> None:
    cookie = await set_cookie(api, "c-unsafe", cookie=f"JSESSIONID={planted}")
    assert cookie == "JSESSIONID=dummy; Path=/; HttpOnly; SameSite=Lax"


async def test_a_safe_value_is_echoed_with_the_attributes(api: Api) -> None:
    cookie = await set_cookie(api, "c-safe", cookie="JSESSIONID=Node-7.a_b")
    assert cookie == "JSESSIONID=Node-7.a_b; Path=/; HttpOnly; SameSite=Lax"


async def test_secure_behind_tls(api: Api) -> None:
    cookie = await set_cookie(api, "c-tls", **{"x-forwarded-proto": "https"})
    assert cookie == "JSESSIONID=dummy; Path=/; HttpOnly; SameSite=Lax; Secure"


async def test_cross_site_over_tls_keeps_its_sticky_cookie(api: Api) -> None:
    cookie = await set_cookie(
        api, "c-cross", origin="https://app.example", **{"x-forwarded-proto": "https"}
    )
    assert cookie == "JSESSIONID=dummy; Path=/; HttpOnly; SameSite=None; Secure"
