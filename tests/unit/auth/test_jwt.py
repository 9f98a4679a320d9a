from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ieum_chat.auth import TokenVerifier, bearer_token, issue_token
from ieum_chat.auth import jwt as jwt_module
from ieum_chat.auth.jwt import VERIFIED_MAX
from ieum_chat.config import Settings
from ieum_chat.errors import AuthError, ErrorCode

SECRET = "test-secret-" + "0123456789abcdef" * 4  # 64+ bytes: long enough for HS512 too


def settings(**extra: object) -> Settings:
    return Settings(jwt_secret=SECRET, **extra)  # type: ignore[arg-type]


def sign(claims: dict[str, object], key: str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


USER = uuid.uuid4()


def test_valid_token_gives_principal() -> None:
    exp = int(time.time()) + 60
    principal = TokenVerifier(settings()).verify(sign({"sub": str(USER), "exp": exp}))
    assert principal.user_id == USER
    assert principal.expires_at == exp


def test_issued_token_round_trips() -> None:
    s = settings(jwt_audience="ieum", jwt_issuer="auth")
    principal = TokenVerifier(s).verify(issue_token(s, USER, ttl=30))
    assert principal.user_id == USER
    assert principal.expires_at == pytest.approx(time.time() + 30, abs=2)


@pytest.mark.parametrize(
    ("token_factory", "detail"),
    [
        (
            lambda: sign({"sub": str(USER), "exp": int(time.time()) + 60}, key="other-key-" * 4),
            "bad signature",
        ),
        (lambda: sign({"sub": str(USER), "exp": int(time.time()) - 5}), "token expired"),
        (lambda: sign({"sub": str(USER)}), "missing claim 'exp'"),
        (lambda: sign({"exp": int(time.time()) + 60}), "missing claim 'sub'"),
        (
            lambda: sign({"sub": "not-a-uuid", "exp": int(time.time()) + 60}),
            "'sub' is not a user id",
        ),
        (lambda: "not.a.jwt", "malformed token"),
        (lambda: "", "missing token"),
        (
            lambda: sign({"sub": str(USER), "exp": int(time.time()) + 60}, alg="HS512"),
            "algorithm not allowed",
        ),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token_factory: object, detail: str) -> None:
    with pytest.raises(AuthError) as info:
        TokenVerifier(settings()).verify(token_factory())  # type: ignore[operator]
    assert info.value.detail == detail
    assert info.value.code is ErrorCode.AUTH_FAILED
    assert info.value.payload()["code"] == "AUTH_FAILED"


def test_alg_none_is_refused() -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": str(USER), "exp": int(time.time()) + 60}).encode())
    with pytest.raises(AuthError):
        TokenVerifier(settings()).verify(f"{header}.{body}.")


def test_none_cannot_be_configured() -> None:
    with pytest.raises(ValueError, match="none"):
        Settings(jwt_algorithms=["HS256", "none"])


def test_wrong_audience_and_issuer_are_refused() -> None:
    s = settings(jwt_audience="ieum-chat", jwt_issuer="ieum-auth")
    exp = int(time.time()) + 60
    good = {"sub": str(USER), "exp": exp, "aud": "ieum-chat", "iss": "ieum-auth"}
    assert TokenVerifier(s).verify(sign(good)).user_id == USER
    with pytest.raises(AuthError, match="wrong audience"):
        TokenVerifier(s).verify(sign({**good, "aud": "someone-else"}))
    with pytest.raises(AuthError, match="wrong issuer"):
        TokenVerifier(s).verify(sign({**good, "iss": "evil"}))
    with pytest.raises(AuthError):
        TokenVerifier(s).verify(sign({"sub": str(USER), "exp": exp}))


def test_expiry_is_checked_against_the_given_clock() -> None:
    exp = int(time.time()) + 60
    token = sign({"sub": str(USER), "exp": exp})
    with pytest.raises(AuthError, match="expired"):
        TokenVerifier(settings()).verify(token, now=exp + 1)


class CountedDecode:
    """jwt.decode, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self._decode = jwt.decode

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        return self._decode(*args, **kwargs)  # type: ignore[arg-type]


def test_a_token_verified_lately_is_not_decoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    decode = CountedDecode()
    monkeypatch.setattr(jwt, "decode", decode)
    verifier = TokenVerifier(settings())
    exp = int(time.time()) + 60
    token = sign({"sub": str(USER), "exp": exp})
    first = verifier.verify(token)
    assert verifier.verify(token) == first
    assert decode.calls == 1
    # The same claims under another signature are other text: decoded, and refused.
    forged = token.rsplit(".", 1)[0] + "." + b64(b"\0" * 32)
    with pytest.raises(AuthError, match="bad signature"):
        verifier.verify(forged)
    assert decode.calls == 2
    # A remembered token still expires.
    with pytest.raises(AuthError, match="token expired"):
        verifier.verify(token, now=exp + 1)


def test_tokens_are_remembered_for_a_while_and_only_the_newest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decode = CountedDecode()
    monkeypatch.setattr(jwt, "decode", decode)
    verifier = TokenVerifier(settings())
    exp = int(time.time()) + 60
    tokens = [sign({"sub": str(uuid.uuid4()), "exp": exp}) for _ in range(VERIFIED_MAX + 1)]
    for token in tokens:
        verifier.verify(token)
    verifier.verify(tokens[-1])
    assert decode.calls == VERIFIED_MAX + 1
    verifier.verify(tokens[0])  # the oldest was let go
    assert decode.calls == VERIFIED_MAX + 2

    monkeypatch.setattr(jwt_module, "VERIFIED_SECONDS", 0.0)
    verifier = TokenVerifier(settings())
    verifier.verify(tokens[1])
    verifier.verify(tokens[1])
    assert decode.calls == VERIFIED_MAX + 4


def test_rs256_with_public_key_and_hs256_confusion_refused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    s = Settings(jwt_public_key=public_pem, jwt_algorithms=["RS256"])
    claims = {"sub": str(USER), "exp": int(time.time()) + 60}
    assert TokenVerifier(s).verify(jwt.encode(claims, key, algorithm="RS256")).user_id == USER
    # The classic key-confusion attack: an HS256 token signed with the public key as secret.
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(public_pem.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest())
    with pytest.raises(AuthError, match="algorithm not allowed"):
        TokenVerifier(s).verify(f"{header}.{body}.{sig}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer   abc", "abc"),
        ("abc.def.ghi", "abc.def.ghi"),
        ("  ", None),
        (None, None),
        ("Bearer ", None),
    ],
)
def test_bearer_token(value: str | None, expected: str | None) -> None:
    assert bearer_token(value) == expected
