"""Gateway tokens: issue, verify, scopes, expiry, rotation, forgeries refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from serve.cli import main
from serve.tokens import (
    ScopeMissing,
    SigningKeys,
    TokenError,
    TokenInvalid,
    issue,
    verify,
)

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
OLD = "k1=" + "a" * 40
NEW = "k2=" + "b" * 40


def test_a_token_carries_its_client_and_scopes() -> None:
    keys = SigningKeys.parse(OLD)
    token = issue(keys, client="gw_kassa", scopes=["score", "explain"], ttl_s=3600, now=NOW)
    claims = verify(keys, token, scope="explain", now=NOW + timedelta(minutes=5))
    assert claims.client == "gw_kassa"
    assert claims.scopes == {"score", "explain"}
    assert claims.kid == "k1"
    assert claims.expires == NOW + timedelta(hours=1)
    with pytest.raises(ScopeMissing, match="admin"):
        verify(keys, token, scope="admin", now=NOW)


def test_expired_and_early_tokens_are_refused() -> None:
    keys = SigningKeys.parse(OLD)
    token = issue(keys, client="gw", scopes=["score"], ttl_s=60, now=NOW)
    verify(keys, token, scope="score", now=NOW + timedelta(seconds=60 + 29))  # leeway
    with pytest.raises(TokenInvalid, match="expired"):
        verify(keys, token, scope="score", now=NOW + timedelta(seconds=60 + 31))
    with pytest.raises(TokenInvalid, match="not valid yet"):
        verify(keys, token, scope="score", now=NOW - timedelta(minutes=5))


def test_rotation_keeps_old_tokens_until_their_key_is_dropped() -> None:
    old_token = issue(SigningKeys.parse(OLD), client="gw", scopes=["score"], ttl_s=600, now=NOW)
    both = SigningKeys.parse(f"{NEW},{OLD}")
    new_token = issue(both, client="gw", scopes=["score"], ttl_s=600, now=NOW)
    assert verify(both, new_token, scope="score", now=NOW).kid == "k2"
    assert verify(both, old_token, scope="score", now=NOW).kid == "k1"
    only_new = SigningKeys.parse(NEW)
    with pytest.raises(TokenInvalid, match="retired"):
        verify(only_new, old_token, scope="score", now=NOW)


def test_forgeries_are_refused() -> None:
    keys = SigningKeys.parse(OLD)
    token = issue(keys, client="gw", scopes=["score"], ttl_s=600, now=NOW)
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["scope"] = "score admin"
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenInvalid):
        verify(keys, f"{head}.{forged_body}.{sig}", scope="admin", now=NOW)
    unsigned = jwt.encode(
        {"sub": "gw", "scope": "score"}, key=None, algorithm="none", headers={"kid": "k1"}
    )
    with pytest.raises(TokenInvalid, match="algorithm"):
        verify(keys, unsigned, scope="score", now=NOW)
    other = SigningKeys.parse("k1=" + "z" * 40)  # same kid, another secret
    with pytest.raises(TokenInvalid, match="Signature"):
        verify(
            keys,
            issue(other, client="gw", scopes=["score"], ttl_s=60, now=NOW),
            scope="score",
            now=NOW,
        )
    with pytest.raises(TokenInvalid, match="malformed"):
        verify(keys, "not a token", scope="score", now=NOW)


def test_bad_keys_and_requests_are_refused_clearly() -> None:
    with pytest.raises(TokenError, match="shorter than 32"):
        SigningKeys.parse("k1=short")
    with pytest.raises(TokenError, match="RINGFENCE_JWT_KEYS"):
        SigningKeys.parse(" , ")
    with pytest.raises(TokenError, match="twice"):
        SigningKeys.parse(f"{OLD},{OLD}")
    assert "a" * 40 not in repr(SigningKeys.parse(OLD))
    keys = SigningKeys.parse(OLD)
    with pytest.raises(TokenError, match="scope"):
        issue(keys, client="gw", scopes=["everything"], ttl_s=60, now=NOW)
    with pytest.raises(TokenError, match="ttl"):
        issue(keys, client="gw", scopes=["score"], ttl_s=0, now=NOW)


def test_the_operator_mints_a_token_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "keygen"]) == 0
    key = capsys.readouterr().out.strip()
    monkeypatch.setenv("RINGFENCE_JWT_KEYS", key)
    assert main(["token", "issue", "--client", "gw_orbit", "--scope", "score"]) == 0
    token = capsys.readouterr().out.strip()
    claims = verify(SigningKeys.parse(key), token, scope="score", now=datetime.now(UTC))
    assert claims.client == "gw_orbit"
    monkeypatch.delenv("RINGFENCE_JWT_KEYS")
    assert main(["token", "issue", "--client", "gw_orbit"]) == 2
    assert "RINGFENCE_JWT_KEYS" in capsys.readouterr().err
