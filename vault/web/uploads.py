"""Upload forms: a ``multipart/form-data`` body parsed as it arrives, never spooled.

Starlette's ``request.form()`` writes every uploaded file, in plaintext, to a temporary file
before the handler runs.  Kinko must never keep plaintext outside its encryption, and memory
must not grow with a document's size, so the web interface parses the body itself with
python-multipart's push parser, in two steps:

1. ``open_upload`` (on the event loop) reads the body until the headers of the file part have
   arrived.  The form puts its small fields (the CSRF token, the title, the class) before the
   file input, so by then they are all known, and the page can check the CSRF token and name
   the upload's target before a single byte of the file is handed on.
2. ``UploadForm.file_chunks`` (in the upload's worker thread) continues parsing the rest of
   the body as the API's raw uploads read theirs (``vault.api.documents.stream_chunks``) and
   yields the file's bytes in batches to ``documents.upload``, the API's own upload service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from vault.api.documents import next_body_chunk, stream_chunks
from vault.errors import BadRequest

# The small fields before the file (token, title, class, version) together; a form that
# sends more before its file is not one of Kinko's.
MAX_FIELDS_SIZE = 64 * 1024
MAX_FIELDS = 20
# A part's headers are a line or two; these bounds keep a hostile body from growing them
# (python-multipart caps them itself only from 0.0.27 on).
MAX_HEADER_BYTES = 8 * 1024
MAX_HEADERS = 16


def _bad_form() -> BadRequest:
    return BadRequest("the upload form is malformed", code="invalid_form")


@dataclass
class _Parts:
    """The parser's callbacks: the fields, and the first file part's headers and bytes."""

    fields: dict[str, str] = field(default_factory=dict)
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_name: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    # What the current part is: "field", "file" (the first file part) or "skip" (later files).
    kind: str = "field"
    name: str = ""
    value: bytearray = field(default_factory=bytearray)
    fields_size: int = 0
    # The file part: its name, declared type and file name, once its headers are in.
    file_started: bool = False
    file_field: str = ""
    content_type: str | None = None
    filename: str | None = None
    # File bytes parsed but not yet handed on (at most one batch of the body).
    data: list[bytes] = field(default_factory=list)
    file_ended: bool = False
    ended: bool = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value_data,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        self.headers = {}
        self.value = bytearray()
        self.kind = "field"
        self.name = ""

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]
        self._check_header()

    def header_value_data(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]
        self._check_header()

    def _check_header(self) -> None:
        if len(self.header_name) + len(self.header_value) > MAX_HEADER_BYTES:
            raise BadRequest("form too large", code="form_too_large")

    def header_end(self) -> None:
        if len(self.headers) >= MAX_HEADERS:
            raise BadRequest("form too large", code="form_too_large")
        self.headers[bytes(self.header_name).lower()] = bytes(self.header_value)
        self.header_name = bytearray()
        self.header_value = bytearray()

    def headers_finished(self) -> None:
        disposition, params = parse_options_header(self.headers.get(b"content-disposition"))
        if disposition != b"form-data" or b"name" not in params:
            raise _bad_form()
        self.name = _text(params[b"name"])
        if b"filename" not in params:
            self.kind = "field"
            return
        if self.file_started:
            # Kinko's forms have one file input; a second file is not read into anything.
            self.kind = "skip"
            return
        self.kind = "file"
        self.file_started = True
        self.file_field = self.name
        self.filename = _text(params[b"filename"]) or None
        raw_type = self.headers.get(b"content-type")
        self.content_type = raw_type.decode("latin-1") if raw_type is not None else None

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.kind == "file":
            self.data.append(data[start:end])
        elif self.kind == "field" and not self.file_started:
            self.fields_size += end - start
            if self.fields_size > MAX_FIELDS_SIZE:
                raise BadRequest("form too large", code="form_too_large")
            self.value += data[start:end]

    def part_end(self) -> None:
        if self.kind == "file":
            self.file_ended = True
        elif self.kind == "field" and not self.file_started:
            # Only fields before the file count: the token that authorises an upload must have
            # been checked before any of the file's bytes is used.
            if len(self.fields) >= MAX_FIELDS:
                raise BadRequest("form too large", code="form_too_large")
            self.fields.setdefault(self.name, _text(bytes(self.value)))
        self.kind = "skip"

    def end(self) -> None:
        self.ended = True


def _text(raw: bytes) -> str:
    # Browsers send a UTF-8 page's fields in UTF-8.  Undecodable bytes become U+FFFD, which
    # the services' own checks (a title, say) then judge like any other character.
    return raw.decode("utf-8", errors="replace")


@dataclass
class UploadForm:
    """An upload form whose fields (and file part headers) have arrived, but whose file has not
    been read beyond the batch that carried its headers."""

    fields: dict[str, str]
    content_type: str | None
    filename: str | None
    has_file: bool
    _parts: _Parts = field(repr=False)
    _parser: MultipartParser = field(repr=False)
    _stream: AsyncIterator[bytes] = field(repr=False)
    _idle_timeout: float = field(repr=False)

    def file_chunks(self) -> Iterator[bytes]:
        """The file's bytes, for a service running in a worker thread.

        A body that ends before the file part does becomes 400 ``incomplete_upload``, so a
        truncated upload never becomes a version.
        """
        parts = self._parts
        raw = stream_chunks(self._stream, self._idle_timeout)
        while True:
            if parts.data:
                batch = b"".join(parts.data)
                parts.data.clear()
                yield batch
            if parts.file_ended:
                return
            chunk = next(raw, None)
            if chunk is None:
                raise BadRequest("the upload ended before its file did", code="incomplete_upload")
            _feed(self._parser, chunk)


def _feed(parser: MultipartParser, chunk: bytes) -> None:
    try:
        parser.write(chunk)
    except FormParserError:
        raise _bad_form() from None


async def open_upload(request: Request, idle_timeout: float) -> UploadForm:
    """Read an upload form up to the start of its file (see the module's description)."""
    ctype, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise _bad_form()
    parts = _Parts()
    try:
        parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
    except FormParserError:
        raise _bad_form() from None
    stream = request.stream().__aiter__()
    while not parts.file_started and not parts.ended:
        chunk = await next_body_chunk(stream, idle_timeout)
        if chunk is None:
            break
        _feed(parser, chunk)
    return UploadForm(
        fields=parts.fields,
        content_type=parts.content_type,
        filename=parts.filename,
        has_file=parts.file_started,
        _parts=parts,
        _parser=parser,
        _stream=stream,
        _idle_timeout=idle_timeout,
    )
