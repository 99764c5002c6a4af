from shared import auth

SECRET = b"test-secret"


def test_a_session_cookie_round_trips_and_carries_the_role_and_unit():
    session, token = auth.issue_session("siti", "unit_operator", "kua-merigi", "Siti",
                                        secret=SECRET)
    assert auth.read_session(token, secret=SECRET) == session
    assert session.can_see_unit("kua-merigi")
    assert not session.can_see_unit("kua-kepahiang")


def test_a_tampered_or_foreign_session_cookie_is_refused():
    _, token = auth.issue_session("siti", "unit_operator", "kua-merigi", "Siti", secret=SECRET)
    payload, signature = token.rsplit(".", 1)
    forged_payload = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    assert auth.read_session(f"{forged_payload}.{signature}", secret=SECRET) is None
    assert auth.read_session(token, secret=b"another-deployment") is None
    assert auth.read_session("garbage", secret=SECRET) is None
    assert auth.read_session(None, secret=SECRET) is None


def test_an_expired_session_is_refused():
    _, token = auth.issue_session("a", "auditor", None, "A", secret=SECRET, lifetime=10, now=1000)
    assert auth.read_session(token, secret=SECRET, now=1005) is not None
    assert auth.read_session(token, secret=SECRET, now=1011) is None


def test_desk_admins_and_auditors_see_every_unit():
    for role in ("desk_admin", "auditor"):
        session, _ = auth.issue_session("a", role, None, "A", secret=SECRET)
        assert session.can_see_unit("kua-merigi") and session.can_see_unit(None)


def test_the_csrf_token_belongs_to_one_session():
    one, _ = auth.issue_session("a", "desk_admin", None, "A", secret=SECRET)
    two, _ = auth.issue_session("a", "desk_admin", None, "A", secret=SECRET)
    token = auth.csrf_token(one, secret=SECRET)
    assert auth.check_csrf(one, token, secret=SECRET)
    assert not auth.check_csrf(two, token, secret=SECRET)
    assert not auth.check_csrf(one, "", secret=SECRET)


def test_passwords_are_salted_and_verified():
    first, second = auth.hash_password("rahasia-panjang"), auth.hash_password("rahasia-panjang")
    assert first != second
    assert auth.verify_password("rahasia-panjang", first)
    assert not auth.verify_password("rahasia-panjanG", first)
    assert not auth.verify_password("rahasia-panjang", "md5$abc")


def test_without_a_configured_secret_services_share_one_generated_in_var(tmp_path, monkeypatch):
    monkeypatch.delenv("DUMAS_SESSION_SECRET", raising=False)
    monkeypatch.setenv("DUMAS_VAR_DIR", str(tmp_path))
    first = auth.session_secret()
    assert len(first) >= 32 and auth.session_secret() == first
    assert (tmp_path / "session-secret").stat().st_mode & 0o777 == 0o600
