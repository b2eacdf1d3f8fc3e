"""Password accounts of the web interface, through a real server: invitations, password
rules, sign-in and its throttling, sessions and their cookie, CSRF, and the audit events."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import KinkoServer, cli_env, run_kinko, serving
from web_support import (  # noqa: F401 - _close_browsers is an autouse fixture
    PASSWORD,
    _close_browsers,
    anonymous_browser,
    browser_session,
    csrf_of,
    invite,
    set_password,
    sign_in,
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KinkoServer]:
    with serving(tmp_path_factory.mktemp("accounts"), KINKO_TIMEZONE="Asia/Tokyo") as server:
        yield server


def events(server: KinkoServer, **params: str) -> list[dict[str, object]]:
    auditor = server.user("acct-auditor", ["auditor"])
    resp = auditor.http.get("/api/v1/audit/events", params={"limit": "500", **params})
    assert resp.status_code == 200, resp.text
    return list(resp.json()["events"])


def create(server: KinkoServer, name: str, roles: list[str] | None = None) -> None:
    resp = server.admin.http.post("/api/v1/users", json={"name": name, "roles": roles or []})
    assert resp.status_code == 201, resp.text


# -- invitations ------------------------------------------------------------------------------


def test_invitation_is_a_one_time_link_valid_72_hours(srv: KinkoServer) -> None:
    create(srv, "inv-one")
    before = datetime.now(UTC)
    resp = srv.admin.http.post("/api/v1/users/inv-one/invitation")
    assert resp.status_code == 201
    body = resp.json()
    assert set(body) == {"url", "expires_at"}
    assert body["url"].startswith(srv.base_url + "/ui/invitation/")
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert timedelta(hours=71, minutes=59) < expires - before <= timedelta(hours=72, minutes=1)
    secret = body["url"].rsplit("/", 1)[1]
    assert len(secret) >= 43  # 256 bits, base64url

    http = anonymous_browser(srv)
    # Looking at the link consumes nothing (mail scanners follow links).
    assert http.get(body["url"]).status_code == 200
    assert http.get(body["url"]).status_code == 200
    assert set_password(http, body["url"]).status_code == 303
    again = anonymous_browser(srv)
    used = again.get(body["url"])
    assert used.status_code == 410
    assert "使用済み" in used.text
    # The redemption is an audit event naming the user and the client address.
    redeemed = [e for e in events(srv, action="invitation.redeem") if e["actor"] == "inv-one"]
    assert len(redeemed) == 1
    assert redeemed[0]["decision"] == "allow"
    assert redeemed[0]["client"]["ip"] == "127.0.0.1"  # type: ignore[index]
    created = [e for e in events(srv, action="invitation.create") if e["target"] == "inv-one"]
    assert created
    assert created[0]["actor"] == "admin"


def test_only_an_admin_invites_and_only_known_users(srv: KinkoServer) -> None:
    create(srv, "inv-two")
    other = srv.user("inv-clerk", ["procurement"])
    refused = other.http.post("/api/v1/users/inv-two/invitation")
    assert refused.status_code == 403
    assert srv.admin.http.post("/api/v1/users/nobody-here/invitation").status_code == 404
    denied = [e for e in events(srv, action="invitation.create") if e["actor"] == "inv-clerk"]
    assert denied
    assert denied[0]["decision"] == "deny"


def test_a_new_invitation_replaces_the_old_and_resets_the_password(srv: KinkoServer) -> None:
    create(srv, "inv-reset")
    http = anonymous_browser(srv)
    assert set_password(http, invite(srv, "inv-reset")).status_code == 303
    first = invite(srv, "inv-reset")
    second = invite(srv, "inv-reset")
    assert anonymous_browser(srv).get(first).status_code == 410
    fresh = anonymous_browser(srv)
    assert set_password(fresh, second, "a brand new passphrase").status_code == 303
    # The old password no longer signs in; the new one does; the session held before the
    # reset has ended (a reset may follow a stolen password).
    assert sign_in(anonymous_browser(srv), "inv-reset").status_code == 401
    assert sign_in(anonymous_browser(srv), "inv-reset", "a brand new passphrase").status_code == 303
    assert http.get("/ui/").status_code == 303


@pytest.mark.parametrize(
    ("password", "confirm", "code_text"),
    [
        ("short-pass1", "short-pass1", "12文字以上"),
        ("inv-rules", "inv-rules", "12文字以上"),
        ("inv-rules-12345", "inv-rules-12345", "利用者名"),
        ("Password1234!", "Password1234!", "よく使われて"),
        ("qwerty123456", "qwerty123456", "よく使われて"),
        ("123456789012", "123456789012", "よく使われて"),
        ("a good long passphrase", "a good long passphrasf", "一致しません"),
    ],
)
def test_weak_passwords_are_refused(
    srv: KinkoServer, password: str, confirm: str, code_text: str
) -> None:
    resp = srv.admin.http.post("/api/v1/users", json={"name": "inv-rules", "roles": []})
    assert resp.status_code in (201, 409)
    url = invite(srv, "inv-rules")
    http = anonymous_browser(srv)
    form = http.get(url)
    refused = http.post(
        url, data={"csrf": csrf_of(form.text), "password": password, "confirm": confirm}
    )
    assert refused.status_code == 400
    assert code_text in refused.text
    # Nothing was used up: the same link still sets a good password.
    assert set_password(http, url).status_code == 303


def test_cli_prints_a_working_invitation(srv: KinkoServer) -> None:
    create(srv, "inv-cli")
    env = cli_env(KINKO_PUBLIC_URL=srv.base_url)
    done = run_kinko("users", "invite", "inv-cli", "--data-dir", str(srv.data_dir), env=env)
    assert done.returncode == 0, done.stderr
    url = done.stdout.splitlines()[0].strip()
    assert url.startswith(srv.base_url + "/ui/invitation/")
    assert set_password(anonymous_browser(srv), url).status_code == 303
    missing = run_kinko("users", "invite", "no-such-one", "--data-dir", str(srv.data_dir), env=env)
    assert missing.returncode == 2
    assert "user not found" in missing.stderr


# -- sign-in ----------------------------------------------------------------------------------


def test_sign_in_and_out(srv: KinkoServer) -> None:
    browser_session(srv, "si-user").close()
    http = anonymous_browser(srv, "en")
    assert http.get("/ui/").headers["location"] == "/ui/sign-in?next=/ui/"
    page = http.get("/ui/sign-in")
    assert 'lang="en"' in page.text
    assert "User name" in page.text
    assert "Password" in page.text
    done = sign_in(http, "si-user")
    assert done.status_code == 303
    assert done.headers["location"] == "/ui/"
    home = http.get("/ui/")
    assert home.status_code == 200
    assert "Sign out" in home.text
    cookie = http.cookies.get("kinko_session")
    assert cookie
    out = http.post("/ui/sign-out", data={"csrf": csrf_of(home.text)})
    assert out.status_code == 303
    # The session ended on the server: the old cookie, replayed, signs in nobody.
    replay = anonymous_browser(srv)
    replay.cookies.set("kinko_session", cookie)
    assert replay.get("/ui/").status_code == 303
    kinds = {e["action"] for e in events(srv, actor="si-user")}
    assert {"auth.sign_in", "auth.sign_out", "invitation.redeem"} <= kinds


def test_failed_sign_ins_look_the_same_whether_the_user_exists_or_not(srv: KinkoServer) -> None:
    browser_session(srv, "si-real").close()
    http = anonymous_browser(srv)

    def attempt(name: str) -> tuple[httpx.Response, float]:
        form = http.get("/ui/sign-in")
        start = time.perf_counter()
        resp = http.post(
            "/ui/sign-in",
            data={"csrf": csrf_of(form.text), "name": name, "password": "wrong password!"},
        )
        return resp, time.perf_counter() - start

    real = [attempt("si-real") for _ in range(5)]
    ghost = [attempt("si-ghost") for _ in range(5)]
    assert {r.status_code for r, _ in real + ghost} == {401}

    def main(resp: httpx.Response) -> str:
        text = resp.text
        return text[text.index("<main") : text.index("</main>")].replace("si-ghost", "si-real")

    assert main(real[0][0]) == main(ghost[0][0])
    # Both verify an argon2id hash (the unknown user a dummy one), so the times are alike.
    ratio = statistics.median(t for _, t in real) / statistics.median(t for _, t in ghost)
    assert 0.5 < ratio < 2.0, ratio
    fails = events(srv, action="auth.fail")
    assert any(e["actor"] == "si-real" and e["reason"] == "bad_credentials" for e in fails)
    # An unknown name is not written into the log: a name field sometimes holds a password.
    assert not any(e["actor"] == "si-ghost" or e.get("target") == "si-ghost" for e in fails)


def test_ten_failures_lock_the_user_out_whatever_the_password(srv: KinkoServer) -> None:
    browser_session(srv, "si-locked").close()
    http = anonymous_browser(srv)
    codes = [sign_in(http, "si-locked", "not the password").status_code for _ in range(10)]
    assert codes == [401] * 10
    locked = sign_in(http, "si-locked")  # the right password, refused
    assert locked.status_code == 429
    assert "1分ほど待って" in locked.text
    # An unknown user name is throttled the same way, so the answer tells nothing.
    ghost = [sign_in(http, "si-nobody", "not the password").status_code for _ in range(11)]
    assert ghost == [401] * 10 + [429]
    throttled = [e for e in events(srv, action="auth.fail") if e["reason"] == "sign_in_throttled"]
    assert any(e["actor"] == "si-locked" for e in throttled)


def test_parallel_attempts_cannot_outrun_the_throttle(srv: KinkoServer) -> None:
    browser_session(srv, "si-race").close()
    http = anonymous_browser(srv)
    form = http.get("/ui/sign-in")
    token = csrf_of(form.text)
    cookies = dict(http.cookies)

    def attempt(_: int) -> int:
        with httpx.Client(base_url=srv.base_url, cookies=cookies, timeout=60) as c:
            data = {"csrf": token, "name": "si-race", "password": "wrong guess!!"}
            return c.post("/ui/sign-in", data=data).status_code

    # Each attempt is counted before its password is checked, so of 30 at once only the
    # allowance of 10 is checked at all; the rest are refused unchecked.
    with ThreadPoolExecutor(max_workers=30) as pool:
        codes = list(pool.map(attempt, range(30)))
    assert codes.count(401) == 10, codes
    assert codes.count(429) == 20, codes


def test_an_invitation_from_someone_else_is_announced(srv: KinkoServer) -> None:
    create(srv, "inv-note", ["procurement"])
    user = srv.client(srv.admin.create_token("inv-note")["token"])
    case = user.create_case("R8-NOTE", "notice")
    create(srv, "inv-note-sup")
    srv.admin.set_member(case["id"], "inv-note-sup", ["supervisor"])
    assert set_password(anonymous_browser(srv), invite(srv, "inv-note")).status_code == 303
    # Whoever held the link could have set the password: the user and the supervisors of
    # the user's cases are told who issued it.
    sup = srv.client(srv.admin.create_token("inv-note-sup")["token"])
    for reader, who in ((user, "inv-note"), (sup, "inv-note-sup")):
        notes = reader.http.get("/api/v1/me/notifications").json()["notifications"]
        kinds = [(n["kind"], n["user"], n["by"]) for n in notes]
        assert ("password.set_by_invitation", "inv-note", "admin") in kinds, who
    redeemed = [e for e in events(srv, action="invitation.redeem") if e["actor"] == "inv-note"]
    assert redeemed[-1]["reason"] == "invited_by_other"


def test_invitation_links_stay_out_of_the_access_log() -> None:
    import logging

    from vault.web.app import RedactInvitationLinks

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/ui/invitation/SECRETSECRET", "1.1", 200),
        None,
    )
    assert RedactInvitationLinks().filter(record)
    assert "SECRETSECRET" not in record.getMessage()
    assert "/ui/invitation/" in record.getMessage()


def test_per_address_throttling(tmp_path: Path) -> None:
    with serving(tmp_path, KINKO_SIGNIN_ADDRESS_FAILURES="4") as server:
        browser_session(server, "addr-user").close()
        http = anonymous_browser(server)
        codes = [sign_in(http, f"addr-{i}", "nope nope nope").status_code for i in range(4)]
        assert codes == [401] * 4
        # Four different names failed from this address: the next attempt is refused even
        # for a real user with the right password.
        assert sign_in(http, "addr-user").status_code == 429


def test_sign_in_post_without_csrf_is_refused_and_logged(srv: KinkoServer) -> None:
    browser_session(srv, "csrf-user").close()
    http = anonymous_browser(srv)
    http.get("/ui/sign-in")
    resp = http.post("/ui/sign-in", data={"name": "csrf-user", "password": PASSWORD})
    assert resp.status_code == 403
    assert "再読み込み" in resp.text
    forged = http.post(
        "/ui/sign-in", data={"csrf": "0" * 64, "name": "csrf-user", "password": PASSWORD}
    )
    assert forged.status_code == 403
    reasons = [e["reason"] for e in events(srv, action="auth.csrf")]
    assert "csrf_missing" in reasons
    assert "csrf_invalid" in reasons
    # A signed-in browser's token is bound to its session: another session's is refused.
    one = browser_session(srv, "csrf-one")
    two = browser_session(srv, "csrf-two")
    stolen = one.csrf()
    assert two.http.post("/ui/sign-out", data={"csrf": stolen}).status_code == 403
    assert two.http.post("/ui/sign-out", data={"csrf": two.csrf()}).status_code == 303


def test_session_cookie_flags_over_http(srv: KinkoServer) -> None:
    create(srv, "cookie-http")
    http = anonymous_browser(srv)
    url = invite(srv, "cookie-http")
    form = http.get(url)
    done = http.post(
        url, data={"csrf": csrf_of(form.text), "password": PASSWORD, "confirm": PASSWORD}
    )
    cookie = next(
        v for k, v in done.headers.multi_items() if k == "set-cookie" and "kinko_session=" in v
    )
    attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
    assert cookie.startswith("kinko_session=")
    assert {"httponly", "path"} <= attrs
    assert "samesite=strict" in cookie.lower()
    assert "secure" not in attrs
    assert "max-age" not in attrs
    assert "expires" not in attrs


def test_session_cookie_over_https_is_secure_with_host_prefix(tmp_path: Path) -> None:
    # The server itself speaks HTTP here, as behind a TLS-terminating proxy; the public
    # address says HTTPS, which is what decides the cookie.
    with serving(tmp_path, KINKO_PUBLIC_URL="https://kinko.example.go.jp") as server:
        create(server, "cookie-https")
        url = invite(server, "cookie-https")
        assert url.startswith("https://kinko.example.go.jp/ui/invitation/")
        path = url.removeprefix("https://kinko.example.go.jp")
        http = anonymous_browser(server)
        form = http.get(path)
        pre = form.headers["set-cookie"]
        assert pre.startswith("__Host-kinko_pre=")
        assert "secure" in pre.lower()
        # httpx does not send Secure cookies over http: hand the pre-session cookie over.
        nonce = pre.split(";")[0].split("=", 1)[1]
        done = http.post(
            path,
            data={"csrf": csrf_of(form.text), "password": PASSWORD, "confirm": PASSWORD},
            headers={"Cookie": f"__Host-kinko_pre={nonce}"},
        )
        assert done.status_code == 303, done.text
        cookie = next(
            v for k, v in done.headers.multi_items() if k == "set-cookie" and "session" in v
        )
        parts = [a.strip().lower() for a in cookie.split(";")]
        assert cookie.startswith("__Host-kinko_session=")
        assert "secure" in parts
        assert "httponly" in parts
        assert "path=/" in parts
        assert "samesite=strict" in parts
        assert not any(p.startswith("domain") for p in parts)


def test_disabling_a_user_ends_their_sessions(srv: KinkoServer) -> None:
    user = browser_session(srv, "dis-user")
    assert user.http.get("/ui/").status_code == 200
    assert srv.admin.http.post("/api/v1/users/dis-user/disable").status_code == 200
    assert user.http.get("/ui/").status_code == 303
    assert sign_in(anonymous_browser(srv), "dis-user").status_code == 401


def test_root_redirects_to_the_interface(srv: KinkoServer) -> None:
    resp = httpx.get(srv.base_url + "/", follow_redirects=False)
    assert resp.status_code in (302, 303, 307)
    assert resp.headers["location"] == "/ui/"
    page = httpx.get(srv.base_url + "/ui/sign-in")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in page.text
    assert "style=" not in page.text
