"""Starting and stopping jobs: what the job routes ask for, as one service object.

Fine-tuning, re-export and dataset generation each need the settings, the model catalogue
and registry, the job store and the runner (and dataset jobs the documents); routes take
this one object instead of six dependencies. The work itself stays in the services
(api/finetune/service.py, api/datasets/service.py); this only holds what they share.
"""

from dataclasses import dataclass

from api.config import Settings
from api.datasets.service import submit_generation, training_file
from api.datasets.spec import GenerateSpec
from api.errors import Conflict
from api.finetune.data import Upload
from api.finetune.evaluation import EvaluateSpec, submit_evaluation
from api.finetune.service import submit_export, submit_fine_tune
from api.finetune.spec import ExportRequest, FineTuneSpec
from api.jobs.runner import JobRunner
from api.jobs.store import Job, JobStore
from api.models.catalog import BaseCatalog
from api.models.registry import VariantRegistry
from api.rag.documents import DocumentService


@dataclass(frozen=True)
class JobSubmissions:
    settings: Settings
    catalog: BaseCatalog
    registry: VariantRegistry
    documents: DocumentService
    store: JobStore
    runner: JobRunner

    def dataset_upload(self, dataset_id: str) -> Upload:
        """A finished dataset job's pairs as a training file."""
        return Upload(*training_file(self.store, dataset_id))

    def fine_tune(
        self,
        *,
        spec: FineTuneSpec,
        train: Upload | list[Upload],
        eval_: Upload | None,
        idempotency_key: str | None,
    ) -> tuple[Job, bool]:
        """Validate and queue a fine-tuning job; (job, created): a repeated idempotency key
        returns the earlier job."""
        return submit_fine_tune(
            settings=self.settings,
            catalog=self.catalog,
            registry=self.registry,
            store=self.store,
            runner=self.runner,
            spec=spec,
            train=train,
            eval_=eval_,
            idempotency_key=idempotency_key,
        )

    def export(self, source_id: str, request: ExportRequest) -> Job:
        return submit_export(
            settings=self.settings,
            catalog=self.catalog,
            registry=self.registry,
            store=self.store,
            runner=self.runner,
            source_id=source_id,
            request=request,
        )

    def evaluate(self, *, spec: EvaluateSpec, test: Upload) -> Job:
        return submit_evaluation(
            settings=self.settings,
            catalog=self.catalog,
            registry=self.registry,
            store=self.store,
            runner=self.runner,
            spec=spec,
            test=test,
        )

    def generate_dataset(
        self, *, spec: GenerateSpec, seed_file: Upload | None, prompt_files: list[Upload]
    ) -> Job:
        return submit_generation(
            settings=self.settings,
            catalog=self.catalog,
            registry=self.registry,
            documents=self.documents,
            store=self.store,
            runner=self.runner,
            spec=spec,
            seed_file=seed_file,
            prompt_files=prompt_files,
        )

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job; a cancelled job stays cancelled (idempotent)."""
        job = self.store.require(job_id)
        if job.state in ("succeeded", "failed"):
            raise Conflict(
                f"Job {job_id} already {job.state}; only queued or running jobs can be cancelled."
            )
        self.runner.cancel(job_id)
        return self.store.require(job_id)
