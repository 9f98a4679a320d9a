"""JWT verification and issuing. No web framework imports here."""

from ieum_chat.auth.jwt import Principal, TokenVerifier, bearer_token, issue_token

__all__ = ["Principal", "TokenVerifier", "bearer_token", "issue_token"]
