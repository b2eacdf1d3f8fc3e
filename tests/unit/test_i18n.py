"""The web interface's catalogs: every message has a Japanese translation that keeps its
placeholders, and the language is chosen as the browser asks."""

from __future__ import annotations

import re

import pytest

from vault.web.catalogs import messages, untranslated
from vault.web.i18n import negotiate, translations

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def test_messages_are_found_in_templates_and_code() -> None:
    found = messages()
    # A few that must be there, from a template, the page code and the label table.
    assert "Sign in" in found
    assert "Upload" in found or "Cases" in found
    assert "Tender announced" in found
    assert len(found) > 50


def test_every_message_has_a_japanese_translation() -> None:
    missing = untranslated("ja")
    assert not missing, "no Japanese translation for: " + "; ".join(
        f"{m!r} ({where[0]})" for m, where in sorted(missing.items())
    )


def test_translations_keep_their_placeholders() -> None:
    ja = translations("ja")
    for message in messages():
        wanted = sorted(PLACEHOLDER.findall(message))
        assert sorted(PLACEHOLDER.findall(ja.gettext(message))) == wanted, message


def test_required_labels() -> None:
    ja = translations("ja")
    for en, expected in {
        "User name": "利用者名",
        "Password": "パスワード",
        "Sign in": "サインイン",
        "New password": "新しいパスワード",
        "Confirm password": "パスワード（確認）",
        "Set password": "パスワードを設定",
        "Sign out": "サインアウト",
        "Cases": "案件",
        "Reviews": "点検・確認",
        "Audit": "監査",
        "Users": "利用者",
    }.items():
        assert ja.gettext(en) == expected


@pytest.mark.parametrize(
    ("cookie", "header", "lang"),
    [
        (None, None, "ja"),
        (None, "en-US,en;q=0.9", "en"),
        (None, "fr-FR, en;q=0.5, ja;q=0.8", "ja"),
        (None, "fr-FR", "ja"),
        ("en", "ja", "en"),
        ("de", "en", "en"),
        (None, "en;q=0", "ja"),
    ],
)
def test_language_negotiation(cookie: str | None, header: str | None, lang: str) -> None:
    assert negotiate(cookie, header) == lang
