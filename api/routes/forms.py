"""Multipart forms shared by the routes that take a spec plus files (fine-tuning, datasets)."""

from typing import Any

from fastapi import UploadFile
from pydantic import BaseModel

from api.errors import InvalidInput, PayloadTooLarge
from api.finetune.data import Upload


def spec_fields(form: BaseModel, file_fields: set[str], schema: str) -> dict[str, Any]:
    """The form's spec fields; a field that is neither in the spec nor a file is refused."""
    extra = set(form.model_extra or {})
    unknown = sorted(extra - file_fields)
    if unknown:
        raise InvalidInput(
            f"Unknown form field(s): {', '.join(unknown)}. See the {schema} "
            "schema for the accepted fields."
        )
    return form.model_dump(exclude=extra)


async def read_upload(upload: UploadFile, label: str, limit: int) -> Upload:
    """Read at most limit+1 bytes, so an oversized upload is refused without holding it all."""
    content = await upload.read(limit + 1)
    if len(content) > limit:
        raise PayloadTooLarge(
            f"{label} is larger than the {limit}-byte limit "
            "(LLM_MAX_DATASET_BYTES); upload a smaller file."
        )
    return Upload(filename=upload.filename or label, content=content)
