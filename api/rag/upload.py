"""Receive a multipart upload straight to disk, with a size cap, without buffering it.

FastAPI's `UploadFile` reads the whole body before the route runs, so a size cap there
comes too late; this reads `request.stream()` through python-multipart's push parser
and stops at the first byte over the limit.
"""

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from api.errors import InvalidInput, PayloadTooLarge

FIELD_LIMIT = 1024  # bytes for a text field such as `model`
OVERHEAD = 64 * 1024  # room for multipart headers and small fields in Content-Length
USAGE = (
    "send multipart/form-data with a `file` part and a `model` field "
    "(curl -F file=@handbook.pdf -F model=NAME)"
)


@dataclass
class Upload:
    path: Path
    size: int = 0
    filename: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


class _Receiver:
    def __init__(self, upload: Upload, max_bytes: int):
        self.upload, self.max_bytes = upload, max_bytes
        self.header_field, self.header_value = b"", b""
        self.headers: dict[bytes, bytes] = {}
        self.part: str | None = None
        self.value = bytearray()
        self.file: BinaryIO | None = None

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field_data,
            "on_header_value": self.header_value_data,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        self.headers, self.part, self.value = {}, None, bytearray()

    def header_field_data(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def header_value_data(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field, self.header_value = b"", b""

    def headers_finished(self) -> None:
        _, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.part = params.get(b"name", b"").decode("utf-8", "replace")
        if self.part == "file":
            if self.file is not None:
                raise InvalidInput(f"More than one `file` part: {USAGE}.")
            filename = params.get(b"filename")
            self.upload.filename = filename.decode("utf-8", "replace") if filename else None
            self.file = self.upload.path.open("wb")

    def data(self, data: bytes, start: int, end: int) -> None:
        if self.part == "file":
            assert self.file is not None
            self.upload.size += end - start
            if self.upload.size > self.max_bytes:
                raise _too_large(self.max_bytes)
            self.file.write(data[start:end])
        else:
            self.value += data[start:end]
            if len(self.value) > FIELD_LIMIT:
                raise InvalidInput(f"Form field {self.part!r} is longer than {FIELD_LIMIT} bytes.")

    def part_end(self) -> None:
        if self.part == "file":
            assert self.file is not None
            self.file.close()
        elif self.part:
            self.upload.fields[self.part] = self.value.decode("utf-8", "replace")


def _discard(receiver: _Receiver, upload: Upload) -> None:
    if receiver.file is not None:
        receiver.file.close()
    upload.path.unlink(missing_ok=True)


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The upload is larger than the limit of {max_bytes} bytes "
        "(LLM_RAG_MAX_UPLOAD_BYTES); split the PDF or raise the limit."
    )


async def receive(request: Request, *, incoming_dir: Path, max_bytes: int) -> Upload:
    """Stream the request's `file` part to a new file in `incoming_dir`; collect text fields.

    The caller owns `Upload.path` afterwards (it exists when a file part was sent); on
    any error here it is removed.
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise InvalidInput(f"Not a multipart upload: {USAGE}.")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes + OVERHEAD:
        raise _too_large(max_bytes)
    incoming_dir.mkdir(parents=True, exist_ok=True)
    upload = Upload(path=incoming_dir / f"{uuid.uuid4().hex}.part")
    receiver = _Receiver(upload, max_bytes)
    parser = MultipartParser(params[b"boundary"], receiver.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        _discard(receiver, upload)
        raise InvalidInput(f"Malformed multipart body ({exc}): {USAGE}.") from None
    except BaseException:
        _discard(receiver, upload)
        raise
    if receiver.file is None:
        raise InvalidInput(f"No `file` part in the upload: {USAGE}.")
    return upload
