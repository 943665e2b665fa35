"""The API image's Python requirements resolve on PyPI for the image's platform.

api/Dockerfile installs pyproject.toml's dependencies with `uv pip install -r pyproject.toml`
in a directory holding only that file, so uv also applies its [tool.uv.pip] table (wheels
only, but for the sdists named there), on the Python image its PYTHON_IMAGE names. These
tests run the same uv (the test extra pins the Dockerfile's UV_VERSION) on a copy of the same
file, the same way, for that image's CPython version and glibc on x86_64, against PyPI. So a
pin PyPI has no wheel for (torch from a CUDA index, a version never released, an sdist that
is not listed) fails here rather than at `docker compose build`.

Cost: uv reads metadata only (PEP 658 files, or a wheel's METADATA by HTTP range request);
the one file it downloads whole is llama-cpp-python's sdist (77 MB), whose metadata lives
in it, besides the index pages (about 40 MB); about 5 s a resolution here. Torch's and the
CUDA libraries' wheels (GBs) are never downloaded. The sdists' own build
requirements are not resolved here: rouge-score's metadata is built (so its build requires
are fetched), llama-cpp-python's compile is what `make setup` does on every machine.
Without PyPI these tests fail; they never skip.
"""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from uv import find_uv_bin

from api.config import REPO_ROOT

PYPROJECT = (REPO_ROOT / "pyproject.toml").read_text()
DOCKERFILE = (REPO_ROOT / "api" / "Dockerfile").read_text()
# The glibc of each Debian release a python:*-slim-<release> image can be built on.
GLIBC = {"bookworm": "2_36"}


def _image_platform() -> tuple[str, str]:
    """(python version, uv's --python-platform) of the Dockerfile's PYTHON_IMAGE."""
    image = re.search(r"^ARG PYTHON_IMAGE=(\S+)", DOCKERFILE, re.M).group(1)
    match = re.fullmatch(r"python:(3\.\d+)(?:\.\d+)?-slim-(\w+)", image)
    assert match, f"{image}: expected python:3.X[.Y]-slim-<debian release>"
    python, release = match.groups()
    assert release in GLIBC, f"add {release}'s glibc to GLIBC"
    return python, f"x86_64-manylinux_{GLIBC[release]}"


def _resolve(pyproject_text: str, tmp: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    """`uv pip compile` as the image installs: a directory with only pyproject.toml in it."""
    workdir = tmp / "app"
    workdir.mkdir(parents=True)
    (workdir / "pyproject.toml").write_text(pyproject_text)
    python, platform = _image_platform()
    # Only the network settings of this environment; no user or system uv configuration.
    env = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "SSL_CERT_FILE", "SSL_CERT_DIR") or k.lower().endswith("_proxy")
    }
    env |= {
        "HOME": str(tmp),
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "XDG_CONFIG_DIRS": str(tmp / "config"),
        "UV_CACHE_DIR": str(cache),
    }
    return subprocess.run(
        [
            find_uv_bin(),
            "pip",
            "compile",
            "pyproject.toml",
            "--extra",
            "cluster",  # as api/Dockerfile installs it: Ray for the cluster profile
            "--extra",
            "gpu",  # and liger-kernel
            "--python",
            sys.executable,
            "--python-version",
            python,
            "--python-platform",
            platform,
            "--no-header",
            "--no-annotate",
            "-o",
            "resolved.txt",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _without_llama_cpp(text: str) -> str:
    """The negative tests need no sdist download: uv re-fetches this 77 MB one every run."""
    out = re.sub(r'^ +"llama-cpp-python==[^"]+",\n', "", text, flags=re.M)
    assert out != text
    return out


@pytest.fixture(scope="module")
def uv_cache(tmp_path_factory) -> Path:
    """One fresh cache for this module: nothing is reused from an earlier run."""
    return tmp_path_factory.mktemp("uv-cache")


def test_the_image_installs_pyproject_with_the_tested_uv_and_nothing_else():
    installs = re.findall(r"uv pip install [^\n]*", DOCKERFILE)
    assert installs == [
        "uv pip install --python /opt/venv/bin/python -r pyproject.toml --extra cluster \\"
    ]
    assert "--extra cluster \\\n    --extra gpu\n" in DOCKERFILE
    assert "COPY pyproject.toml ./" in DOCKERFILE
    assert "index-url" not in DOCKERFILE and "find-links" not in DOCKERFILE
    uv_version = re.search(r"^ARG UV_VERSION=(\S+)", DOCKERFILE, re.M).group(1)
    assert f'"uv=={uv_version}"' in PYPROJECT  # the test extra's uv is the image's
    assert re.search(r'pip install "uv==\$\{UV_VERSION\}"', DOCKERFILE)
    out = subprocess.run([find_uv_bin(), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.split()[1] == uv_version
    table = tomllib.loads(PYPROJECT)["tool"]["uv"]["pip"]
    assert table["only-binary"] == [":all:"]
    assert "llama-cpp-python" in table["no-binary"]


def test_every_pin_resolves_for_the_image_platform(tmp_path, uv_cache):
    result = _resolve(PYPROJECT, tmp_path, uv_cache)
    assert result.returncode == 0, result.stderr
    resolved = dict(
        re.findall(
            r"^([a-z0-9._-]+)==(\S+)$", (tmp_path / "app" / "resolved.txt").read_text(), re.M
        )
    )
    python = _image_platform()[0]
    target = {
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "python_version": python,
    }
    project = tomllib.loads(PYPROJECT)["project"]
    extras = project["optional-dependencies"]
    for line in project["dependencies"] + extras["cluster"] + extras["gpu"]:
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate(target):
            continue
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        (pin,) = requirement.specifier
        assert resolved.get(name) == pin.version, (name, resolved.get(name), pin.version)
    # PyPI's torch for Linux is the CUDA 13 build (docs/production.md: driver 580 or newer); a CPU-only
    # torch would make every job in the image train on the CPU.
    assert "nvidia-cudnn-cu13" in resolved and "triton" in resolved


def test_a_pin_that_pypi_has_no_wheel_for_fails(tmp_path, uv_cache):
    bad = _without_llama_cpp(PYPROJECT).replace('"torch==2.13.0"', '"torch==2.13.0+cu128"')
    assert "torch==2.13.0+cu128" in bad
    result = _resolve(bad, tmp_path, uv_cache)
    assert result.returncode != 0
    assert "torch==2.13.0+cu128" in result.stderr


def test_an_sdist_not_named_in_the_uv_table_fails(tmp_path, uv_cache):
    # rouge-score publishes only an sdist: the image builds it because the table names it.
    table = re.search(r"^no-binary = \[.*\]$", PYPROJECT, re.M).group(0)
    assert '"rouge-score"' in table
    bad = _without_llama_cpp(PYPROJECT).replace(table, table.replace('"rouge-score"', ""))
    assert '"rouge-score"' not in bad and '"rouge-score==' in bad
    result = _resolve(bad, tmp_path, uv_cache)
    assert result.returncode != 0
    assert "rouge-score" in result.stderr and "no usable wheels" in result.stderr
