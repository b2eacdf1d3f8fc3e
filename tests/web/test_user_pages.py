"""The Users (admin), My account and Public documents pages, through a real server.

Each test works as people do: an administrator at a browser, invited users who set their
password from the link, anonymous visitors; the API is used only to set the scene and to
check what the pages did.
"""

from __future__ import annotations

import html
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import KinkoServer

    from clients import KinkoClient

SECRET_RE = re.compile(r'<p class="secret" id="(?P<id>[a-z-]+)">(?P<value>[^<]+)</p>')
LOCAL_TIME_RE = r"\d{4}-\d\d-\d\d \d\d:\d\d \(UTC\)"


def new_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def secret_box(page: str, box_id: str) -> str:
    found = [m["value"] for m in SECRET_RE.finditer(page) if m["id"] == box_id]
    assert len(found) == 1, page[:2000]
    return html.unescape(found[0])


def api(server: KinkoServer, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {token or server.admin_token}"}
    return httpx.request(method, server.base_url + path, headers=headers, timeout=30, **kw)


@pytest.fixture(scope="module")
def auditor(server: KinkoServer) -> KinkoClient:
    return server.user("pages-auditor", ["auditor"])


@pytest.fixture
def admin(browsers: Any) -> Any:
    return browsers(new_name("boss"), ["admin"])


# -- Users (admin) -----------------------------------------------------------------------------


def test_admin_creates_and_invites_a_user_whose_link_works_once(
    server: KinkoServer, admin: Any, anonymous: Any, browsers: Any
) -> None:
    name = new_name("yamada")
    made = admin.post_form(
        "/ui/users",
        {"name": name, "display_name": "山田 太郎", "role_procurement": "1"},
        page="/ui/users",
    )
    assert made.status_code == 303, made.text
    assert made.headers["location"] == f"/ui/users/{name}"
    row = api(server, "GET", f"/api/v1/users/{name}").json()
    assert (row["roles"], row["display_name"], row["password_set"]) == (
        ["procurement"],
        "山田 太郎",
        False,
    )
    listing = admin.get("/ui/users")
    assert listing.status_code == 200
    assert f'href="/ui/users/{name}"' in listing.text
    assert "山田 太郎" in listing.text
    assert "調達部職員" in listing.text  # the role's label, in Japanese by default

    # The invitation is shown once, on the answer to the button, with its expiry.
    page = f"/ui/users/{name}"
    invited = admin.post_form(f"{page}/invite", page=page)
    assert invited.status_code == 200, invited.text
    url = secret_box(invited.text, "invitation-url")
    assert url.startswith(server.base_url + "/ui/invitation/")
    assert re.search(LOCAL_TIME_RE, invited.text)
    assert f"{name} さん本人だけに" in invited.text
    assert url not in admin.get(page).text

    # The invited user sets a password and lands signed in.
    password = "pw-" + secrets.token_hex(10)
    done = anonymous.redeem(url, password)
    assert done.status_code == 303
    assert done.headers["location"] == "/ui/"
    home = anonymous.get("/ui/")
    assert home.status_code == 200
    assert f'href="/ui/me">{name}</a>' in home.text
    assert api(server, "GET", f"/api/v1/users/{name}").json()["password_set"] is True
    assert "設定済み" in admin.get(page).text

    # A second use of the same link is refused, on opening it and on posting it.
    with httpx.Client(base_url=server.base_url) as other:
        again = other.get(url)
        assert again.status_code == 410
        assert "この招待リンクは使用済みです" in again.text
        token = re.search(r'name="csrf" value="([^"]+)"', other.get("/ui/sign-in").text)
        assert token is not None
        reuse = other.post(url, data={"csrf": token[1], "password": password, "confirm": password})
        assert reuse.status_code == 410


def test_a_second_invitation_resets_the_password(
    server: KinkoServer, admin: Any, browsers: Any, anonymous: Any
) -> None:
    name = new_name("reset")
    user = browsers(name)
    old = user.password
    page = f"/ui/users/{name}"
    url = secret_box(admin.post_form(f"{page}/invite", page=page).text, "invitation-url")
    new = "pw-" + secrets.token_hex(10)
    assert anonymous.redeem(url, new).status_code == 303
    # The reset ended the sessions the old password had opened.
    ended = user.get("/ui/me")
    assert ended.status_code == 303
    assert ended.headers["location"].startswith("/ui/sign-in")
    refused = user.sign_in(name, old)
    assert refused.status_code == 401
    assert user.sign_in(name, new).status_code == 303
    assert user.get("/ui/me").status_code == 200


def test_disabling_a_user_ends_their_session_at_once(
    server: KinkoServer, admin: Any, browsers: Any
) -> None:
    name = new_name("leaver")
    user = browsers(name)
    assert user.get("/ui/me").status_code == 200
    page = f"/ui/users/{name}"
    off = admin.post_form(f"{page}/disable", page=page)
    assert off.status_code == 303
    nxt = user.get("/ui/me")
    assert nxt.status_code == 303
    assert nxt.headers["location"] == "/ui/sign-in?next=/ui/me"
    shown = admin.get(page).text
    assert "無効" in shown
    assert f'action="{page}/enable"' in shown
    assert f'action="{page}/invite"' not in shown  # a disabled user cannot be invited
    assert user.sign_in(name, user.password).status_code == 401

    on = admin.post_form(f"{page}/enable", page=page)
    assert on.status_code == 303
    assert api(server, "GET", f"/api/v1/users/{name}").json()["disabled"] is False
    assert user.sign_in(name, user.password).status_code == 303


def test_an_admin_cannot_disable_themselves_on_the_page(server: KinkoServer, admin: Any) -> None:
    me = admin.get("/ui/me").text
    name = re.search(r'href="/ui/me">([^<]+)</a>', me)
    assert name is not None
    page = f"/ui/users/{name[1]}"
    refused = admin.post_form(f"{page}/disable", page=page)
    assert refused.status_code == 409
    assert "自分のアカウントは無効にできません" in refused.text


def test_a_non_admin_is_refused_the_users_pages(
    server: KinkoServer, browsers: Any, auditor: KinkoClient
) -> None:
    name = new_name("clerk")
    clerk = browsers(name, ["procurement"])
    home = clerk.get("/ui/").text
    assert 'href="/ui/users"' not in home
    for path in ("/ui/users", "/ui/users/admin"):
        refused = clerk.get(path)
        assert refused.status_code == 403, path
        assert "利用者とトークンの管理は管理者だけが行えます" in refused.text
    posted = clerk.post_form("/ui/users", {"name": new_name("sock")}, page="/ui/me")
    assert posted.status_code == 403
    invite = clerk.post_form("/ui/users/admin/invite", page="/ui/me")
    assert invite.status_code == 403
    denied = auditor.audit_events(actor=name, decision="deny")["events"]
    assert {"user.list", "user.read", "user.create", "invitation.create"} <= {
        e["action"] for e in denied
    }


def test_the_admin_page_lists_and_revokes_tokens_but_shows_no_secret(
    server: KinkoServer, admin: Any, browsers: Any
) -> None:
    name = new_name("holder")
    user = browsers(name)
    minted = user.post_form("/ui/me/tokens", page="/ui/me")
    token = secret_box(minted.text, "new-token-value")
    token_id = api(server, "GET", "/api/v1/me/tokens", token).json()["tokens"][0]["id"]
    page = f"/ui/users/{name}"
    shown = admin.get(page).text
    assert f"<code>{token_id}</code>" in shown
    assert token not in shown
    assert f'action="{page}/tokens"' not in shown  # admins do not mint tokens for others
    revoked = admin.post_form(f"{page}/tokens/{token_id}/revoke", page=page)
    assert revoked.status_code == 303
    assert api(server, "GET", "/api/v1/me", token).status_code == 401
    assert f'action="{page}/tokens/{token_id}/revoke"' not in admin.get(page).text


# -- My account --------------------------------------------------------------------------------


def test_my_account_mints_a_token_that_works_and_carries_no_issuer_mark(
    server: KinkoServer, browsers: Any
) -> None:
    name = new_name("syncer")
    user = browsers(name, ["procurement"])
    account = user.get("/ui/me")
    assert account.status_code == 200
    assert "調達部職員" in account.text
    assert 'href="/ui/lang/en?next=/ui/me"' in account.text

    minted = user.post_form("/ui/me/tokens", {"ttl_days": "2"}, page="/ui/me")
    assert minted.status_code == 200, minted.text
    token = secret_box(minted.text, "new-token-value")
    assert token.startswith("kinko_")
    assert "kinko sync --server" in minted.text
    assert "--token-file" in minted.text
    assert token not in user.get("/ui/me").text  # shown once

    me = api(server, "GET", "/api/v1/me", token)
    assert me.status_code == 200
    assert me.json()["name"] == name
    listed = api(server, "GET", f"/api/v1/users/{name}/tokens").json()["tokens"]
    assert len(listed) == 1
    assert listed[0]["issued_by"] is None  # a session's principal has no issuer
    expires = datetime.fromisoformat(listed[0]["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - (datetime.now(UTC) + timedelta(days=2))) < timedelta(minutes=5)

    token_id = listed[0]["id"]
    revoked = user.post_form(f"/ui/me/tokens/{token_id}/revoke", page="/ui/me")
    assert revoked.status_code == 303
    assert revoked.headers["location"] == "/ui/me"
    assert api(server, "GET", "/api/v1/me", token).status_code == 401
    after = user.get("/ui/me").text
    assert re.search(LOCAL_TIME_RE + " に失効", after)
    assert f'action="/ui/me/tokens/{token_id}/revoke"' not in after

    bad = user.post_form("/ui/me/tokens", {"ttl_days": "many"}, page="/ui/me")
    assert bad.status_code == 400
    assert "有効日数は1〜3650の整数" in bad.text
    assert len(api(server, "GET", f"/api/v1/users/{name}/tokens").json()["tokens"]) == 1


def test_my_account_lists_the_latest_sign_ins(server: KinkoServer, browsers: Any) -> None:
    name = new_name("signer")
    first = browsers(name)
    with type(first)(base_url=server.base_url, follow_redirects=False) as second:
        assert second.sign_in(name, first.password).status_code == 303
        page = second.get("/ui/me").text
        rows = re.findall(r'<table class="list sign-ins">.*?</table>', page, re.S)
        assert len(rows) == 1
        body = rows[0]
        assert body.count("<code>127.0.0.1</code>") == 2
        assert "パスワード" in body
        assert "招待リンク" in body
        assert body.count("継続中") == 2
        assert re.search(LOCAL_TIME_RE, body)
        second.post_form("/ui/sign-out", page="/ui/me")
    later = first.get("/ui/me").text
    body = re.findall(r'<table class="list sign-ins">.*?</table>', later, re.S)[0]
    assert body.count("継続中") == 1
    assert body.count("終了") == 1


# -- Public documents --------------------------------------------------------------------------


def test_the_public_page_lists_and_serves_disclosed_documents(
    server: KinkoServer, anonymous: Any
) -> None:
    drafter_name = new_name("drafter")
    drafter = server.user(drafter_name, ["procurement"])
    number = "R8-P" + secrets.token_hex(3).upper()
    case = drafter.create_case(number, "公開ページの案件")
    # The creator drafts; an administrator adds the supervisor role so the case can move on.
    put = api(
        server,
        "PUT",
        f"/api/v1/cases/{case['id']}/members/{drafter_name}",
        json={"roles": ["drafter", "supervisor"]},
    )
    assert put.status_code == 200, put.text
    spec = drafter.create_document(case["id"], "specification", "仕様書（確定）", b"spec v1")
    drafter.put_content(spec["id"], b"spec v2 final")
    drafter.finalize(spec["id"], 2)
    hidden = drafter.create_document(case["id"], "proposal", "秘密の提案書", b"never")
    drafter.finalize(hidden["id"], 1)
    drafter.transition(case["id"], "announced")

    page = anonymous.get("/ui/public")
    assert page.status_code == 200
    rows = [r for r in re.findall(r"<tr>.*?</tr>", page.text, re.S) if number in r]
    assert len(rows) == 1
    row = rows[0]
    assert "仕様書（確定）" in row
    assert "仕様書" in row
    assert "<td>2</td>" in row
    assert "秘密の提案書" not in page.text
    link = re.search(r'href="([^"]+/content)"', row)
    assert link is not None
    assert link[1] == f"/api/v1/public/documents/{spec['id']}/content"
    download = anonymous.get(link[1])
    assert download.status_code == 200
    assert download.content == b"spec v2 final"

    sign_in = anonymous.get("/ui/sign-in").text
    assert 'href="/ui/public"' in sign_in


# -- CSRF --------------------------------------------------------------------------------------


def test_a_post_without_its_csrf_token_is_refused_and_logged(
    server: KinkoServer, admin: Any, auditor: KinkoClient
) -> None:
    name = new_name("forged")
    me = admin.get("/ui/me").text
    admin_name = re.search(r'href="/ui/me">([^<]+)</a>', me)
    assert admin_name is not None
    forged = admin.post("/ui/users", data={"name": name})
    assert forged.status_code == 403
    assert api(server, "GET", f"/api/v1/users/{name}").status_code == 404
    token_forged = admin.post("/ui/me/tokens", data={"csrf": "0" * 64})
    assert token_forged.status_code == 403
    assert api(server, "GET", "/api/v1/users/" + admin_name[1] + "/tokens").json()["tokens"] == []
    events = auditor.audit_events(actor=admin_name[1], action="auth.csrf")["events"]
    assert [(e["decision"], e["reason"]) for e in events] == [
        ("deny", "csrf_missing"),
        ("deny", "csrf_invalid"),
    ]
