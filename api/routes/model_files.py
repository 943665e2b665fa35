"""Downloads: a model's files (GGUFs, adapters, checkpoint) listed and streamed with Range."""

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import ModelFilesDep
from api.problems import responses

router = APIRouter(tags=["models"])

ModelPath = Annotated[str, Path(min_length=1, max_length=200, description="A model's name.")]


class ModelFilePublic(BaseModel):
    kind: str = Field(
        ...,
        description="`gguf` (a served GGUF, one per quantisation type), `adapter_gguf`, "
        "`peft_adapter` (the trained LoRA, safetensors), `checkpoint` (a base's HF "
        "checkpoint), `export_result` (what the export wrote).",
    )
    path: str = Field(..., description="Relative to the model; use it in the download URL.")
    size: int = Field(..., description="Bytes.")
    sha256: str


class ModelFilesPublic(BaseModel):
    model: str
    data: list[ModelFilePublic]
    count: int
    total_bytes: int


@router.get("/models/{name}/files", response_model=ModelFilesPublic, responses=responses(404))
async def list_model_files(name: ModelPath, files: ModelFilesDep) -> ModelFilesPublic:
    """A model's downloadable files with size and sha256 (a base's GGUF and checkpoint; a
    fine-tuned model's GGUFs, adapter GGUF and PEFT adapter)."""
    found = await run_in_threadpool(files.list, name)
    data = [ModelFilePublic(kind=f.kind, path=f.path, size=f.size, sha256=f.sha256) for f in found]
    return ModelFilesPublic(
        model=name, data=data, count=len(data), total_bytes=sum(f.size for f in data)
    )


@router.get(
    "/models/{name}/files/{file:path}",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The file."},
        206: {"description": "The requested byte range (`Range: bytes=START-END`)."},
        416: {"description": "The range lies outside the file."},
        **responses(404),
    },
)
async def download_model_file(
    name: ModelPath,
    file: Annotated[str, Path(min_length=1, max_length=500, description="A listed path.")],
    files: ModelFilesDep,
) -> FileResponse:
    """One file of a model, as listed by GET /models/{name}/files; `Range` requests get 206."""
    path = await run_in_threadpool(files.get, name, file)
    return FileResponse(path, filename=path.name, media_type="application/octet-stream")
