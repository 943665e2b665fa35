"""docker-compose.yml, api/Dockerfile, ollama/entrypoint.sh and .env.example, checked as files.

No Docker engine runs here (nor in CI), so nothing is built or started: these tests parse
the files and check the deployment's promises (one published port, GPU reservations,
healthchecks that work in images without curl, pinned images, required secrets).
"""

import os
import re
import subprocess

import pytest
import yaml

from api.config import REPO_ROOT, Settings

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (REPO_ROOT / "api" / "Dockerfile").read_text()
ENV_EXAMPLE = (REPO_ROOT / ".env.example").read_text()
ENTRYPOINT = REPO_ROOT / "ollama" / "entrypoint.sh"
VARIABLE_RE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _version(tag: str) -> tuple[int, ...]:
    return tuple(int(p) for p in tag.split("-")[0].split("."))


def _mounts(service: str) -> dict[str, str]:
    """target -> source for a service's volumes."""
    out = {}
    for spec in SERVICES[service].get("volumes", []):
        source, target, *_ = spec.split(":")
        out[target] = source
    return out


def test_three_services_and_only_the_api_publishes_a_port():
    assert set(SERVICES) == {"api", "ollama", "chromadb"}
    assert [name for name, s in SERVICES.items() if "ports" in s] == ["api"]
    (port,) = SERVICES["api"]["ports"]
    assert port.endswith(":8000")
    assert "expose" not in SERVICES["ollama"] and "expose" not in SERVICES["chromadb"]


def test_ollama_and_chroma_are_only_reachable_on_the_internal_network():
    assert COMPOSE["networks"]["internal"]["internal"] is True
    for name, service in SERVICES.items():
        assert "internal" in service["networks"], name
    assert SERVICES["chromadb"]["networks"] == ["internal"]
    assert "network_mode" not in SERVICES["ollama"]


@pytest.mark.parametrize("name", ["api", "ollama"])
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


def test_named_volumes_for_models_vectors_and_the_shared_volume():
    assert set(COMPOSE["volumes"]) == {"shared", "ollama-models", "chroma-data"}
    assert _mounts("api")["/shared"] == "shared"
    assert _mounts("ollama")["/shared"] == "shared"
    assert "/shared:ro" in " ".join(SERVICES["ollama"]["volumes"])  # Ollama only reads it
    assert _mounts("ollama")["/root/.ollama"] == "ollama-models"
    assert _mounts("chromadb")["/data"] == "chroma-data"
    assert SERVICES["api"]["environment"]["LLM_DATA_DIR"] == "/shared"


def test_healthchecks_work_without_curl():
    checks = {name: " ".join(s["healthcheck"]["test"]) for name, s in SERVICES.items()}
    for name, check in checks.items():
        assert "curl" not in check and "wget" not in check, name
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
    settings = Settings(data_dir=REPO_ROOT / "shared", backend=env["LLM_BACKEND"],
                        ollama_url=env["LLM_OLLAMA_URL"])
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


def test_ollama_entrypoint_starts_the_server_and_pulls_the_base_model():
    service = SERVICES["ollama"]
    assert service["entrypoint"] == ["/bin/bash", "/platform/entrypoint.sh"]
    assert "./ollama/entrypoint.sh:/platform/entrypoint.sh:ro" in service["volumes"]
    assert service["environment"]["OLLAMA_BASE_MODEL"] == "${OLLAMA_BASE_MODEL:-}"
    assert os.access(ENTRYPOINT, os.X_OK)
    subprocess.run(["bash", "-n", str(ENTRYPOINT)], check=True)
    script = ENTRYPOINT.read_text()
    assert "set -euo pipefail" in script
    assert "ollama serve &" in script
    assert 'ollama pull "$OLLAMA_BASE_MODEL"' in script
    assert "/tmp/platform-ready" in script and "/tmp/platform-ready" in " ".join(
        service["healthcheck"]["test"])


def test_dockerfile_is_pinned_non_root_cached_and_uses_the_setup_script():
    images = re.findall(r"^ARG \w+_IMAGE=(\S+)", DOCKERFILE, re.M)
    assert any(i.startswith("nvidia/cuda:") for i in images)
    for image in images:
        assert ":" in image and not image.endswith(":latest"), image
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "PYTHON=/opt/venv/bin/python scripts/setup_llamacpp.sh" in DOCKERFILE
    assert DOCKERFILE.count("--mount=type=cache") >= 4
    pinned_torch = re.search(r'"torch==([\d.]+)"', (REPO_ROOT / "pyproject.toml").read_text())
    assert pinned_torch and f"ARG TORCH_VERSION={pinned_torch.group(1)}" in DOCKERFILE
    assert re.search(r"ARG TORCH_INDEX=https://download\.pytorch\.org/whl/cu\d+", DOCKERFILE)
    assert '"--port", "8000"' in DOCKERFILE
    assert ".env" in (REPO_ROOT / ".dockerignore").read_text().split()
