"""Extraction of the interface's messages (``python -m vault.web.catalogs``).

Prints every msgid of the templates and the web package that no Japanese catalog file
translates yet, as ``.po`` entries to paste into the area's file in ``locale/ja/``; the test
suite fails while any is left (tests/unit/test_i18n.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.extract import extract_from_dir

from vault.web.i18n import translations

WEB = Path(__file__).resolve().parent
METHOD_MAP = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
OPTIONS_MAP = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "false"}}
KEYWORDS = {"_": None, "N_": None, "gettext": None}


def messages() -> dict[str, list[str]]:
    """Every msgid with the files (and lines) that use it."""
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        WEB, METHOD_MAP, OPTIONS_MAP, keywords=KEYWORDS, strip_comment_tags=True
    ):
        if isinstance(message, tuple):
            message = message[0]
        if message:
            found.setdefault(message, []).append(f"{filename}:{lineno}")
    return found


def untranslated(lang: str = "ja") -> dict[str, list[str]]:
    catalog = translations(lang)
    return {m: where for m, where in messages().items() if catalog.gettext(m) == m}


def _po_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def main() -> int:
    missing = untranslated("ja")
    for message, where in sorted(missing.items(), key=lambda item: item[1][0]):
        print(f"#: {' '.join(where)}")
        print(f"msgid {_po_string(message)}")
        print('msgstr ""')
        print()
    print(f"# {len(missing)} untranslated", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
