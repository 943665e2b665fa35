"""Publishing an export again after the API was killed between registering the model and
marking the job succeeded: the registration is this job's own, so it is kept (it used to
be refused as a name taken meanwhile, and the export files it names were deleted)."""

import json
import shutil

import pytest

from api.errors import Conflict
from api.finetune.publish import publish
from api.jobs.store import JobStore
from api.models.registry import Variant


def _exported_job(settings, base_models_dir, name):
    store = JobStore(settings.jobs_db)
    job = store.create(
        model_name=name, base_model="smollm2-135m", spec={}, jobs_dir=settings.jobs_dir
    )
    export_dir = job.job_dir / "export"
    export_dir.mkdir(parents=True)
    shutil.copy(base_models_dir / "smollm2-135m" / "model.gguf", export_dir / "model-Q8_0.gguf")
    (export_dir / "result.json").write_text(
        json.dumps(
            {
                "mode": "merged",
                "files": {"Q8_0": "model-Q8_0.gguf"},
                "serve": {"gguf": "model-Q8_0.gguf"},
                "sizes": {"Q8_0": 1},
                "timings": {},
            }
        )
    )
    return job


def test_publishing_again_keeps_the_jobs_own_registration(client, settings, base_models_dir):
    state = client.app.state
    deps = {
        "settings": settings,
        "catalog": state.catalog,
        "registry": state.registry,
        "server": state.server,
    }
    job = _exported_job(settings, base_models_dir, "exported")
    first = publish(job, **deps)
    assert first["export"]["smoke_reply"]
    again = publish(job, **deps)  # what the restarted API's retry of the job does
    assert again["export"]["files"] == first["export"]["files"]
    variant = state.registry.get("exported")
    assert variant.gguf_path == str(job.job_dir / "export" / "model-Q8_0.gguf")
    r = client.post(
        "/generate", json={"model": "exported", "prompt": "hi", "options": {"max_tokens": 2}}
    )
    assert r.status_code == 200, r.text


def test_a_name_taken_by_another_model_is_still_refused(client, settings, base_models_dir):
    state = client.app.state
    state.registry.add(Variant(name="taken", base_model="smollm2-135m", system_prompt="x"))
    job = _exported_job(settings, base_models_dir, "taken")
    with pytest.raises(Conflict, match="A model named 'taken' was created while the job ran"):
        publish(
            job,
            settings=settings,
            catalog=state.catalog,
            registry=state.registry,
            server=state.server,
        )
    assert state.registry.get("taken").gguf_path is None
