"""Stamping a disclosed PDF with who received it (pypdf).

Every page gets one line at its foot naming the recipient, their organisation, the
disclosure and the time, so a copy that travels further says where it came from.  The line is
real text in a CID-keyed Japanese font that PDF readers are required to provide (the Adobe-
Japan1 ``HeiseiKakuGo-W5``, not embedded), with a ``ToUnicode`` map so that text extraction
(``pypdf``'s, a reader's search) gives the stamp back as written.

The whole file is held in memory while it is stamped; the caller only stamps files up to
``STAMP_MAX`` bytes, which is what bounds that memory (the one exception to streaming).
"""

from __future__ import annotations

import io
import logging
from typing import cast

from pypdf import PdfReader, PdfWriter
from pypdf.errors import PyPdfError
from pypdf.generic import (
    ArrayObject,
    ContentStream,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

log = logging.getLogger("kinko.stamp")

STAMP_MAX = 100 * 1024 * 1024
FONT_NAME = "/KinkoStamp"
FONT_SIZE = 7


def stampable(content_type: str, title: str, size: int) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    is_pdf = media == "application/pdf" or title.lower().endswith(".pdf")
    return is_pdf and size <= STAMP_MAX


def _to_unicode() -> DecodedStreamObject:
    # UniJIS-UCS2-H codes are UCS-2 code units, so the map back to Unicode is the identity
    # over the Basic Multilingual Plane, written as 256 ranges (a range may only vary in its
    # last byte).
    lines = [
        "/CIDInit /ProcSet findresource begin",
        "12 dict begin",
        "begincmap",
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
        "/CMapName /Adobe-Identity-UCS def",
        "/CMapType 2 def",
        "1 begincodespacerange",
        "<0000> <FFFF>",
        "endcodespacerange",
    ]
    for start in range(0, 256, 100):
        block = range(start, min(start + 100, 256))
        lines.append(f"{len(block)} beginbfrange")
        lines += [f"<{h:02X}00> <{h:02X}FF> <{h:02X}00>" for h in block]
        lines.append("endbfrange")
    lines += ["endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end"]
    stream = DecodedStreamObject()
    stream.set_data("\n".join(lines).encode("ascii"))
    return stream


def _font(writer: PdfWriter) -> IndirectObject:
    def name(value: str) -> NameObject:
        return NameObject(value)

    descriptor = DictionaryObject(
        {
            name("/Type"): name("/FontDescriptor"),
            name("/FontName"): name("/HeiseiKakuGo-W5"),
            name("/Flags"): NumberObject(4),
            name("/FontBBox"): ArrayObject([NumberObject(v) for v in (-92, -250, 1010, 922)]),
            name("/ItalicAngle"): NumberObject(0),
            name("/Ascent"): NumberObject(752),
            name("/Descent"): NumberObject(-271),
            name("/CapHeight"): NumberObject(737),
            name("/StemV"): NumberObject(58),
        }
    )
    cid_font = DictionaryObject(
        {
            name("/Type"): name("/Font"),
            name("/Subtype"): name("/CIDFontType0"),
            name("/BaseFont"): name("/HeiseiKakuGo-W5"),
            name("/CIDSystemInfo"): DictionaryObject(
                {
                    name("/Registry"): TextStringObject("Adobe"),
                    name("/Ordering"): TextStringObject("Japan1"),
                    name("/Supplement"): NumberObject(4),
                }
            ),
            name("/FontDescriptor"): writer._add_object(descriptor),
            name("/DW"): NumberObject(1000),
        }
    )
    return writer._add_object(
        DictionaryObject(
            {
                name("/Type"): name("/Font"),
                name("/Subtype"): name("/Type0"),
                name("/BaseFont"): name("/HeiseiKakuGo-W5-UniJIS-UCS2-H"),
                name("/Encoding"): name("/UniJIS-UCS2-H"),
                name("/DescendantFonts"): ArrayObject([writer._add_object(cid_font)]),
                name("/ToUnicode"): writer._add_object(_to_unicode()),
            }
        )
    )


def _ucs2(text: str) -> str:
    # Characters outside the BMP have no UCS-2 code; they are replaced rather than dropped,
    # so the stamp's length still tells that something was there.
    safe = "".join(ch if ord(ch) <= 0xFFFF and ch.isprintable() else "?" for ch in text)
    return safe.encode("utf-16-be").hex().upper()


def stamp_pdf(data: bytes, text: str) -> bytes | None:
    """``data`` with ``text`` at the foot of every page; None when it is not a PDF pypdf can
    read (the caller then serves it as it is and says so in the audit event)."""
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            return None
        writer = PdfWriter(clone_from=reader)
        font = _font(writer)
        code = _ucs2(text)
        for page in writer.pages:
            box = page.mediabox
            x = float(box.left) + 12
            y = float(box.bottom) + 8
            if "/Resources" not in page:
                page[NameObject("/Resources")] = DictionaryObject()
            resources = cast(DictionaryObject, page["/Resources"].get_object())
            if "/Font" not in resources:
                resources[NameObject("/Font")] = DictionaryObject()
            fonts = cast(DictionaryObject, resources["/Font"].get_object())
            fonts[NameObject(FONT_NAME)] = font
            existing = page.get_contents()
            before = existing.get_data() if existing is not None else b""
            # The page's own content runs inside q/Q so that whatever state it leaves does
            # not move or hide the stamp drawn after it.
            line = (
                f"q BT {FONT_NAME} {FONT_SIZE} Tf 0.75 0 0 rg "
                f"{FloatObject(x)} {FloatObject(y)} Td <{code}> Tj ET Q"
            ).encode("ascii")
            stream = ContentStream(None, writer)
            stream.set_data(b"q\n" + before + b"\nQ\n" + line + b"\n")
            page.replace_contents(stream)
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("could not stamp a disclosed PDF (%s); serving it as it is", exc)
        return None
