"""A model's documents: import (PDF upload), list, delete one, delete all (seed paths)."""

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.deps import ModelDocumentsDep
from api.models.schemas import Message
from api.problems import responses
from api.rag import upload as uploads
from api.rag.catalog import DocumentRecord
from api.rag.documents import DOC_NAME_RULE

router = APIRouter(tags=["documents"])

_MODEL = Query(..., min_length=1, max_length=200, description="A base or variant name.")
_UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "model"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The PDF."},
                        "model": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 200,
                            "description": "The model that gets the document.",
                        },
                        "name": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 127,
                            "description": "Document name; defaults to the file name. "
                            + DOC_NAME_RULE,
                        },
                    },
                }
            }
        },
    }
}


class DocumentPublic(BaseModel):
    model: str
    name: str
    pages: int
    chunks: int
    size: int = Field(..., description="Size of the PDF in bytes.")
    imported_at: str


class DocumentImported(DocumentPublic):
    replaced: bool = Field(..., description="True when a document of that name was replaced.")


class DocumentsPublic(BaseModel):
    model: str
    data: list[DocumentPublic]
    count: int


def _public(r: DocumentRecord) -> DocumentPublic:
    return DocumentPublic(
        model=r.model,
        name=r.name,
        pages=r.pages,
        chunks=r.chunks,
        size=r.size,
        imported_at=r.imported_at,
    )


@router.post(
    "/importDocument",
    status_code=201,
    response_model=DocumentImported,
    openapi_extra=_UPLOAD_SCHEMA,
    responses=responses(404, 409, 413, 503),
)
async def import_document(request: Request, documents: ModelDocumentsDep) -> DocumentImported:
    """Import a PDF for a model (multipart: `file`, `model`, optional `name`); a document
    with the same name is replaced. The text is split into chunks and embedded."""
    upload = await uploads.receive(
        request, incoming_dir=documents.incoming_dir, max_bytes=documents.max_upload_bytes
    )
    record, replaced = await run_in_threadpool(documents.import_upload, upload)
    return DocumentImported(**_public(record).model_dump(), replaced=replaced)


@router.get("/listDocuments", response_model=DocumentsPublic, responses=responses(404, 503))
def list_documents(documents: ModelDocumentsDep, model: str = _MODEL) -> DocumentsPublic:
    """The documents a model answers from: name, pages, chunks, size, import time."""
    name, records = documents.list(model)
    data = [_public(r) for r in records]
    return DocumentsPublic(model=name, data=data, count=len(data))


@router.delete("/deleteDocument", response_model=Message, responses=responses(404, 409, 503))
def delete_document(
    documents: ModelDocumentsDep,
    model: str = _MODEL,
    document: str = Query(..., min_length=1, max_length=200, description="The document's name."),
) -> Message:
    """Delete one document of a model (its file and its vectors)."""
    name = documents.delete(model, document)
    return Message(message=f"Document {document!r} deleted from model {name!r}.")


@router.delete("/deleteAllDocuments", response_model=Message, responses=responses(404, 409, 503))
def delete_all_documents(documents: ModelDocumentsDep, model: str = _MODEL) -> Message:
    """Delete every document of a model (409 while a document is being imported for it)."""
    name, count = documents.delete_all(model)
    return Message(message=f"{count} document(s) deleted from model {name!r}.")
