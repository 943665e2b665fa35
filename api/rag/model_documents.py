"""A model's documents as the routes see them: the model named by the request, resolved
and held while its document is imported, so that a delete cannot pull it away meanwhile.

DocumentService (documents.py) stores documents under a model name it trusts; this puts
the model service's name resolution and its use lock (api/models/in_use.py) in front.
"""

from pathlib import Path

from api.errors import InvalidInput
from api.models.service import ModelService
from api.rag.catalog import DocumentRecord
from api.rag.documents import DocumentService
from api.rag.pdf import PDF_MAGIC, check_pdf_header
from api.rag.upload import Upload


class ModelDocuments:
    def __init__(self, *, models: ModelService, documents: DocumentService):
        self.models, self.documents = models, documents

    @property
    def incoming_dir(self) -> Path:  # where uploads arrive before they are imported
        return self.documents.incoming_dir

    @property
    def max_upload_bytes(self) -> int:
        return self.documents.settings.rag_max_upload_bytes

    def import_upload(self, upload: Upload) -> tuple[DocumentRecord, bool]:
        """Import a received upload (fields `model`, optional `name`) as a PDF of that
        model; returns (record, replaced). The upload's file is gone afterwards."""
        try:
            name = upload.fields.get("name") or upload.filename or ""
            what = f"importing document {name!r}"
            with self.models.held(upload.fields.get("model", ""), what) as model:
                if not name:
                    raise InvalidInput("The upload has no file name; send a `name` field.")
                with upload.path.open("rb") as f:
                    check_pdf_header(f.read(len(PDF_MAGIC)), name=name)
                return self.documents.import_document(
                    model=model, name=name, upload=upload.path, size=upload.size
                )
        finally:
            upload.path.unlink(missing_ok=True)  # moved away on success

    def list(self, model: str) -> tuple[str, list[DocumentRecord]]:
        """(the model's name, its documents)."""
        name = self.models.resolve(model).name
        return name, self.documents.list_documents(model=name)

    def delete(self, model: str, document: str) -> str:
        """Delete one document (its file and its vectors); returns the model's name."""
        name = self.models.resolve(model).name
        self.documents.delete_document(model=name, name=document)
        return name

    def delete_all(self, model: str) -> tuple[str, int]:
        """Delete every document of a model (409 while one is being imported for it);
        returns (the model's name, how many)."""
        with self.models.free(model, action="Delete its documents") as name:
            return name, self.documents.delete_all(model=name)
