"""A model's documents: import (PDF upload), list, delete one, delete all (seed paths)."""

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.deps import CatalogDep, DocumentsDep, ModelUseDep, RegistryDep, SettingsDep
from api.errors import InvalidInput
from api.models.schemas import Message
from api.models.service import resolve_model
from api.problems import responses
from api.rag import upload as uploads
from api.rag.catalog import DocumentRecord
from api.rag.documents import DOC_NAME_RULE
from api.rag.pdf import PDF_MAGIC, check_pdf_header

router = APIRouter(tags=["documents"])

_MODEL = Query(..., min_length=1, max_length=200, description="A base or variant name.")
_UPLOAD_SCHEMA = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file", "model"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "The PDF."},
        "model": {"type": "string", "minLength": 1, "maxLength": 200,
                  "description": "The model that gets the document."},
        "name": {"type": "string", "minLength": 1, "maxLength": 127,
                 "description": "Document name; defaults to the file name. " + DOC_NAME_RULE},
    }}}}}}


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
    return DocumentPublic(model=r.model, name=r.name, pages=r.pages, chunks=r.chunks,
                          size=r.size, imported_at=r.imported_at)


@router.post("/importDocument", status_code=201, response_model=DocumentImported,
             openapi_extra=_UPLOAD_SCHEMA, responses=responses(404, 409, 413, 503))
async def import_document(request: Request, settings: SettingsDep, catalog: CatalogDep,
                          registry: RegistryDep, documents: DocumentsDep,
                          use: ModelUseDep) -> DocumentImported:
    """Import a PDF for a model (multipart: `file`, `model`, optional `name`); a document
    with the same name is replaced. The text is split into chunks and embedded."""
    upload = await uploads.receive(request, incoming_dir=documents.incoming_dir,
                                   max_bytes=settings.rag_max_upload_bytes)
    try:
        name = upload.fields.get("name") or upload.filename or ""
        what = f"importing document {name!r}"

        def hold_model() -> str:  # the model cannot be deleted from now until the end
            with use.lock:
                model = resolve_model(catalog=catalog, registry=registry,
                                      name=upload.fields.get("model", "")).name
                use.acquire(model, what)
                return model

        model = await run_in_threadpool(hold_model)
        try:
            if not name:
                raise InvalidInput("The upload has no file name; send a `name` field.")
            with upload.path.open("rb") as f:
                check_pdf_header(f.read(len(PDF_MAGIC)), name=name)
            record, replaced = await run_in_threadpool(
                documents.import_document, model=model, name=name, upload=upload.path,
                size=upload.size)
        finally:
            use.release(model, what)
    finally:
        upload.path.unlink(missing_ok=True)  # moved away on success
    return DocumentImported(**_public(record).model_dump(), replaced=replaced)


@router.get("/listDocuments", response_model=DocumentsPublic, responses=responses(404, 503))
def list_documents(catalog: CatalogDep, registry: RegistryDep, documents: DocumentsDep,
                   model: str = _MODEL) -> DocumentsPublic:
    """The documents a model answers from: name, pages, chunks, size, import time."""
    served = resolve_model(catalog=catalog, registry=registry, name=model)
    data = [_public(r) for r in documents.list_documents(model=served.name)]
    return DocumentsPublic(model=served.name, data=data, count=len(data))


@router.delete("/deleteDocument", response_model=Message,
                responses=responses(404, 409, 503))
def delete_document(catalog: CatalogDep, registry: RegistryDep, documents: DocumentsDep,
                    model: str = _MODEL,
                    document: str = Query(..., min_length=1, max_length=200,
                                          description="The document's name.")) -> Message:
    """Delete one document of a model (its file and its vectors)."""
    served = resolve_model(catalog=catalog, registry=registry, name=model)
    documents.delete_document(model=served.name, name=document)
    return Message(message=f"Document {document!r} deleted from model {served.name!r}.")


@router.delete("/deleteAllDocuments", response_model=Message,
                responses=responses(404, 409, 503))
def delete_all_documents(catalog: CatalogDep, registry: RegistryDep, documents: DocumentsDep,
                         use: ModelUseDep, model: str = _MODEL) -> Message:
    """Delete every document of a model (409 while a document is being imported for it)."""
    with use.lock:
        served = resolve_model(catalog=catalog, registry=registry, name=model)
        use.check_free(served.name, action="Delete its documents")
        count = documents.delete_all(model=served.name)
    return Message(message=f"{count} document(s) deleted from model {served.name!r}.")
