"""Training on several processes (`gpus: N`, N > 1): the recipe runs as N ranks under
`accelerate launch` (DDP: one process per GPU, or per CPU core with gloo on a host
without one).

The step process the runner started (`python -m api.finetune.recipe JOB_DIR --db DB
[--resume]`) is the launcher. It checks that the host still offers N devices, starts
`accelerate launch` in its own process group (so the runner's kill of the group stops every
rank), waits, and turns a rank's failure into error.txt. Each rank runs the same module
with torchrun's RANK/WORLD_SIZE set; only rank 0 writes events, metrics, predictions and
the adapter (the Trainer saves checkpoints on the main process only). The export runs
afterwards as its own single-process step.

`accelerate launch --multi_gpu` is torchrun underneath; on a host without CUDA the Trainer
(use_cpu) makes the same ranks a gloo group. `--cpu` would select accelerate's MPI
launcher instead, which is not installed. With `sharding: fsdp` the launch adds accelerate's
FSDP arguments (api/finetune/sharding.py) instead of `--multi_gpu`: the same torchrun ranks,
sharing the base.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from api.childproc import die_with_parent
from api.config import REPO_ROOT
from api.finetune import sharding
from api.jobs import step
from api.jobs.capacity import cpu_cores
from api.jobs.cpu_priority import yield_cpu
from api.jobs.layout import JobFiles
from api.jobs.store import JobStore


def is_main() -> bool:
    """Rank 0, or the only process: the one that writes the job's outputs and events."""
    return step.process_rank() == 0


def local_rank() -> int:
    """The GPU this rank trains on."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def in_ranks() -> bool:
    """This process is one of the ranks accelerate started (not the launcher)."""
    return "LOCAL_RANK" in os.environ


def sharded() -> bool:
    """This rank was launched with FSDP (`sharding: fsdp`): accelerate's launcher set
    ACCELERATE_USE_FSDP, which the Trainer's Accelerator reads."""
    return in_ranks() and os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"


def describe(processes: int, cuda: bool) -> str:
    what = "GPUs (NCCL)" if cuda else "CPU processes (gloo)"
    return f"{processes} {what}"


def launch_first(module: str, *, description: str) -> None:
    """Called at the top of `module` run as a step, before it imports torch and TRL: when
    the spec asks for more than one process (and this is not a rank), launch the ranks and
    exit with their outcome; otherwise return, and the module trains in this process."""
    if in_ranks():
        return
    args = step.arguments(description)
    spec = json.loads(JobFiles(args.job_dir).spec.read_text())
    processes = int(spec.get("gpus", 1))
    if processes <= 1:
        return

    def run(job_dir: Path, store: JobStore, resume: bool) -> None:
        # CPU ranks (gloo) inherit the launching step's priority and its session's autogroup
        yield_cpu(on_gpu=_local_devices()[0])
        launch(module, job_dir, store, resume, processes, spec.get("sharding", "ddp"))

    sys.exit(step.main(run, description=description))


def launch(
    module: str,
    job_dir: Path,
    store: JobStore,
    resume: bool,
    processes: int,
    mode: str = "ddp",
) -> None:
    files = JobFiles(job_dir)
    cuda, offered = _local_devices()
    if processes > offered:  # the API checked at submission; the host may have changed
        where = f"{offered} CUDA GPU(s)" if cuda else f"no CUDA GPU and {offered} CPU core(s)"
        raise RuntimeError(f"gpus: {processes} processes asked for, but this host has {where}")
    fsdp: list[str] = []
    if mode == "fsdp":
        if not cuda:  # accelerate would train the gloo ranks as DDP (api/finetune/sharding.py)
            raise RuntimeError(
                "sharding: fsdp needs CUDA GPUs, and this host has none; the job was accepted "
                "where there were. Submit it again with sharding: ddp to train on the CPU."
            )
        hf_dir = Path(json.loads(files.run.read_text())["hf_dir"])
        fsdp = sharding.fsdp_launch_arguments(sharding.layer_classes(hf_dir))
    env = dict(os.environ)
    if not cuda:  # torchrun's default is one thread per rank; share the cores instead
        env["OMP_NUM_THREADS"] = str(max(1, cpu_cores() // processes))
    command = launch_command(module, job_dir, store.path, resume, processes, fsdp)
    how = "FSDP, the base split across them (FULL_SHARD)" if fsdp else "DDP"
    store.add_event(
        job_dir.name,
        "launch",
        f"Training on {describe(processes, cuda)} with {how} under accelerate launch; rank 0 "
        "reports progress and writes the outputs.",
        processes=processes,
        device="cuda" if cuda else "cpu",
        **({"sharding": "fsdp"} if fsdp else {}),
    )
    for stale in files.root.glob("error.rank*.txt"):
        stale.unlink()
    proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, preexec_fn=die_with_parent())
    code = proc.wait()
    if code == 0:
        return
    reasons = sorted(files.root.glob("error.rank*.txt"))
    if not files.error.is_file():  # rank 0 said nothing: another rank's reason, or the code
        reason = reasons[0].read_text() if reasons else f"accelerate launch exited with {code}"
        files.error.write_text(reason)
    for other in reasons:  # the job's error is error.txt alone
        other.unlink()
    raise SystemExit(code if code > 0 else 1)


def launch_command(
    module: str,
    job_dir: Path,
    db: Path | str,
    resume: bool,
    processes: int,
    fsdp: list[str] | None = None,
) -> list[str]:
    """The `accelerate launch` command line; `fsdp`: sharding.fsdp_launch_arguments()."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        # torchrun: N local ranks (gloo on the CPU, see the module's docstring); --use_fsdp
        # selects the same launcher with the FSDP_* environment
        *(fsdp or ["--multi_gpu"]),
        "--num_machines",
        "1",
        "--num_processes",
        str(processes),
        "--mixed_precision",
        "no",  # the Trainer sets bf16/fp16 from the spec
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        "--module",
        module,
        str(job_dir),
        "--db",
        str(db),
        *(["--resume"] if resume else []),
    ]


def _local_devices() -> tuple[bool, int]:
    """(CUDA, how many devices): CUDA GPUs, else CPU cores."""
    import torch

    if torch.cuda.is_available():
        return True, torch.cuda.device_count()
    return False, cpu_cores()


def _free_port() -> int:
    """A port for the ranks' rendezvous; several jobs may launch on one host."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
