"""`sharding: fsdp` without a GPU: what can be checked here, and only that.

FSDP itself cannot run on this CPU host with the pinned accelerate: a gloo rank refuses the
FSDP settings or stays DDP (the last test shows it), so the API refuses `fsdp` without CUDA and no test here trains
under FSDP. What runs: a job accepted on (described) two H200s records it; the launch
command the launcher builds for it goes through accelerate's own parser into the FSDP_*
environment each rank reads, and the FSDP plugin built from that environment has FULL_SHARD,
use_orig_params, FULL_STATE_DICT and CPU-RAM-efficient loading, and wraps the tiny base's
decoder layers (and PEFT's policy its LoRA layers); the refusals, with what to do instead.
FSDP training runs in the GPU check (scripts/gpu_fsdp_check.py) on a host with two GPUs.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.config import REPO_ROOT, Settings
from api.finetune import ranks, sharding
from api.finetune.kinds import fine_tune_kinds
from api.finetune.service import Upload, submit_fine_tune
from api.finetune.spec import FineTuneSpec
from api.jobs.runner import JobRunner
from api.jobs.store import JobStore
from api.models.catalog import BaseCatalog
from api.models.registry import VariantRegistry
from tests.utils.devices import H200
from tests.utils.tiny_model import TINY, qa_csv

TWO_H200 = dataclasses.replace(H200, gpus=("NVIDIA H200", "NVIDIA H200"))


@pytest.fixture(scope="module")
def fsdp_job(tmp_path_factory, tiny_models_dir):
    """An FSDP-QLoRA job accepted for two H200s (the runner is not started: nothing trains)."""
    data = tmp_path_factory.mktemp("data")
    settings = Settings(data_dir=data, base_models_dir=tiny_models_dir)
    store = JobStore(settings.jobs_db)
    job, _ = submit_fine_tune(
        settings=settings,
        catalog=BaseCatalog(tiny_models_dir),
        registry=VariantRegistry(settings.registry_path),
        store=store,
        runner=JobRunner(store, settings, kinds=fine_tune_kinds()),
        spec=FineTuneSpec(
            model_name="sharded", base_model=TINY, gpus=2, sharding="fsdp", max_steps=2
        ),
        train=Upload("t.csv", qa_csv(16)),
        eval_=None,
        idempotency_key=None,
        device=TWO_H200,
    )
    return job, store


def test_an_fsdp_job_on_two_gpus_is_accepted_and_recorded(fsdp_job):
    job, store = fsdp_job
    spec = json.loads(job.files.spec.read_text())
    assert (spec["sharding"], spec["gpus"], spec["bits"]) == ("fsdp", 2, 4)  # QLoRA on CUDA
    assert spec["optimizer"] == "adamw_torch"  # the state is sharded: no paged 8-bit default
    assert store.get(job.id).state == "queued"


def test_the_launch_is_accelerates_fsdp_wrapping_the_bases_decoder_layers(fsdp_job, monkeypatch):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env
    from torch.distributed.fsdp import BackwardPrefetch, ShardingStrategy, StateDictType

    job, store = fsdp_job
    hf_dir = Path(json.loads(job.files.run.read_text())["hf_dir"])
    classes = sharding.layer_classes(hf_dir)
    assert classes == ["LlamaDecoderLayer"]
    command = ranks.launch_command(
        "api.finetune.recipe",
        job.job_dir,
        store.path,
        False,
        2,
        sharding.fsdp_launch_arguments(classes),
    )
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    assert "--multi_gpu" not in command and "--use_fsdp" in command
    args = launch_command_parser().parse_args(command[3:])
    assert args.use_fsdp and args.num_processes == 2 and args.module
    assert args.training_script == "api.finetune.recipe"
    args, _, _ = _validate_launch_command(args)
    env = prepare_multi_gpu_env(args)
    assert env["ACCELERATE_USE_FSDP"] == "true"
    assert {k: env[k] for k in env if k.startswith("FSDP_")} == {
        "FSDP_VERSION": "1",
        "FSDP_SHARDING_STRATEGY": "FULL_SHARD",
        "FSDP_RESHARD_AFTER_FORWARD": "true",  # FSDP2's; FSDP1 reads the sharding strategy
        "FSDP_OFFLOAD_PARAMS": "false",
        "FSDP_MIN_NUM_PARAMS": "100000000",
        "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP",
        "FSDP_TRANSFORMER_CLS_TO_WRAP": "LlamaDecoderLayer",
        "FSDP_BACKWARD_PREFETCH": "BACKWARD_PRE",
        "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT",
        "FSDP_FORWARD_PREFETCH": "false",
        "FSDP_USE_ORIG_PARAMS": "true",
        "FSDP_CPU_RAM_EFFICIENT_LOADING": "true",
        "FSDP_SYNC_MODULE_STATES": "true",
        "FSDP_ACTIVATION_CHECKPOINTING": "false",
        "FSDP_ACTIVATION_CHECKPOINTING_OFFLOAD": "false",
    }

    # What each rank's Accelerator builds from that environment. With sync_module_states the
    # plugin asks for the rank's current CUDA device (where empty ranks get their weights);
    # this host has none, so it is given device 0 here, as rank 0 on a GPU host would have.
    import accelerate.utils.dataclasses as accelerate_dataclasses

    monkeypatch.setattr(accelerate_dataclasses, "is_cuda_available", lambda: True)
    monkeypatch.setattr(accelerate_dataclasses.torch.cuda, "current_device", lambda: 0)
    for key, value in env.items():
        if key.startswith(("FSDP_", "ACCELERATE_USE_FSDP")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 1
    assert plugin.sharding_strategy == ShardingStrategy.FULL_SHARD
    assert plugin.use_orig_params is True
    assert plugin.state_dict_type == StateDictType.FULL_STATE_DICT
    assert plugin.cpu_ram_efficient_loading is True and plugin.sync_module_states is True
    assert plugin.backward_prefetch == BackwardPrefetch.BACKWARD_PRE
    assert not plugin.cpu_offload.offload_params

    from peft import LoraConfig, get_peft_model
    from peft.utils.other import fsdp_auto_wrap_policy
    from transformers import AutoModelForCausalLM
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    model = AutoModelForCausalLM.from_pretrained(hf_dir)
    plugin.set_auto_wrap_policy(model)  # raises when the class is not in the model
    assert plugin.auto_wrap_policy.keywords["transformer_layer_cls"] == {LlamaDecoderLayer}
    # the policy the Trainer swaps in for a PEFT model (update_fsdp_plugin_peft) reads the
    # same class names, and also wraps each trainable LoRA layer
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    policy = fsdp_auto_wrap_policy(peft_model)
    layer = peft_model.base_model.model.model.layers[0]
    assert policy(layer, recurse=False, nonwrapped_numel=0)
    assert policy(layer.self_attn.q_proj.lora_A["default"], recurse=False, nonwrapped_numel=0)
    assert not policy(layer.self_attn.q_proj.base_layer, recurse=False, nonwrapped_numel=0)


def test_fsdp_on_a_host_without_cuda_stops_before_launching(fsdp_job, monkeypatch):
    """A job accepted for GPUs that meets a CPU-only host (the GPUs went away)."""
    job, store = fsdp_job
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    before = len(store.events(job.id))
    with pytest.raises(RuntimeError, match="sharding: fsdp needs CUDA GPUs, and this host"):
        ranks.launch("api.finetune.recipe", job.job_dir, store, False, 2, "fsdp")
    assert len(store.events(job.id)) == before  # no launch event: nothing started


def _spec(**fields) -> FineTuneSpec:
    base = {"model_name": "m", "base_model": TINY, "gpus": 2, "sharding": "fsdp", "bits": 4}
    return FineTuneSpec(**{**base, **fields})


def _hf_dir(tmp_path: Path, **config) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


@pytest.mark.parametrize(
    ("fields", "cuda", "config", "says"),
    [
        ({"gpus": 1}, True, {}, "gpus is 1; ask for gpus: 2 or more, or leave sharding at ddp"),
        ({}, False, {}, "needs CUDA GPUs, and jobs here train on CPU processes (gloo)"),
        (
            {},
            True,
            {"quantization_config": {"quant_method": "gptq", "bits": 4}},
            "already quantised (GPTQ), and FSDP shards floating-point weights only. "
            "Provision the 16-bit checkpoint and train it with bits: 4 (FSDP-QLoRA) or 16",
        ),
        ({"bits": 8}, True, {}, "not bits 8: int8 weights cannot be flattened"),
        ({"method": "dpo"}, True, {}, "method dpo trains with sharding: ddp"),
        ({}, True, {"architectures": None}, "names no architecture in its config.json"),
    ],
)
def test_what_fsdp_cannot_shard_is_refused_with_what_to_use(tmp_path, fields, cuda, config, says):
    hf_dir = _hf_dir(tmp_path, **{"architectures": ["LlamaForCausalLM"], **config})
    problem = sharding.sharding_problem(_spec(**fields), cuda, hf_dir)
    assert problem is not None and problem.startswith("sharding: fsdp")
    assert says in problem


def test_ddp_and_a_shardable_fsdp_job_pass(tmp_path):
    hf_dir = _hf_dir(tmp_path, architectures=["LlamaForCausalLM"])
    assert sharding.sharding_problem(_spec(), True, hf_dir) is None
    assert sharding.sharding_problem(_spec(bits=16), True, hf_dir) is None
    assert sharding.sharding_problem(_spec(sharding="ddp", gpus=1), False, hf_dir) is None


def test_accelerate_runs_no_fsdp_on_a_cpu_world():
    """Why `fsdp` needs CUDA, with the pinned accelerate (accelerate/state.py, utils/
    dataclasses.py): a gloo CPU rank given the launcher's FSDP environment cannot build its
    Accelerator (sync_module_states asks for a GPU), and without module-state sync it builds a
    MULTI_CPU one with no FSDP plugin, i.e. DDP. If a later accelerate runs FSDP on the CPU,
    this fails: then train `sharding: fsdp` on CPU ranks in a test instead."""
    probe = (
        "import os\n"
        "from accelerate import Accelerator\n"
        "try:\n"
        "    Accelerator(cpu=True)\n"
        "except RuntimeError as exc:\n"
        "    print('refused:', exc)\n"
        "os.environ['FSDP_SYNC_MODULE_STATES'] = 'false'\n"
        "os.environ['FSDP_CPU_RAM_EFFICIENT_LOADING'] = 'false'\n"
        "a = Accelerator(cpu=True)\n"
        "print(a.distributed_type, getattr(a.state, 'fsdp_plugin', None))\n"
    )
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "ACCELERATE_USE_FSDP": "true",
        "FSDP_CPU_RAM_EFFICIENT_LOADING": "true",
        "FSDP_SYNC_MODULE_STATES": "true",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(ranks._free_port()),
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    refused, built = done.stdout.splitlines()
    assert refused.startswith("refused: There are currently no available devices found")
    assert built.split() == ["DistributedType.MULTI_CPU", "None"], done.stdout
