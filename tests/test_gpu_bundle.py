"""The GPU machine's bundle (scripts/gpu_bundle.py): versions, pruning, size accounting and
unpacking, on small fake bundles (the real one downloads ~60 MB and compiles llama.cpp)."""

import json
import sys
import tarfile

import pytest

from api.config import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))

import gpu_bundle  # noqa: E402


def test_versions_come_from_this_install_then_the_pins_then_the_fallback():
    import fastapi

    assert gpu_bundle.pinned("fastapi", "") == fastapi.__version__  # installed here
    pyproject = "dependencies = [\n    \"no-such-package-xyz==1.2.3; sys_platform == 'linux'\",\n]"
    assert gpu_bundle.pinned("no-such-package-xyz", pyproject) == "1.2.3"
    assert gpu_bundle.pinned("bitsandbytes", "") in (
        gpu_bundle.FALLBACK["bitsandbytes"],
        _installed("bitsandbytes"),
    )
    with pytest.raises(SystemExit, match="no version for not-a-package-abc"):
        gpu_bundle.pinned("not-a-package-abc", "")


def _installed(name):
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def test_every_carried_package_has_a_version_here():
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    versions = {name: gpu_bundle.pinned(name, pyproject) for name in gpu_bundle.CARRIED}
    assert all(versions.values())
    assert versions["transformers"] == _installed("transformers")  # the tested pin


def test_wheel_for_picks_the_exact_version(tmp_path):
    for name in (
        "pydantic-2.14.3-py3-none-any.whl",
        "pydantic-2.13.0-py3-none-any.whl",
        "pydantic_core-2.50.4-cp312-cp312-manylinux_2_17_x86_64.whl",
    ):
        (tmp_path / name).write_bytes(b"")
    assert gpu_bundle.wheel_for(tmp_path, "pydantic", "2.14.3").name.startswith("pydantic-2.14.3")
    assert gpu_bundle.wheel_for(tmp_path, "pydantic-core", "2.50.4").name.startswith(
        "pydantic_core-2.50.4-"
    )
    assert gpu_bundle.wheel_for(tmp_path, "pydantic", "2.15.0") is None


def test_prune_keeps_cpu_and_cuda13_bitsandbytes_libraries_only(tmp_path):
    bnb = tmp_path / "bitsandbytes"
    bnb.mkdir()
    names = [
        "libbitsandbytes_cpu.so",
        "libbitsandbytes_cuda130.so",
        "libbitsandbytes_cuda132.so",
        "libbitsandbytes_cuda128.so",
        "libbitsandbytes_rocm72.so",
        "functional.py",
    ]
    for name in names:
        (bnb / name).write_bytes(b"x")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "uvicorn").write_text("#!/wrong/python")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libllama.so").write_bytes(b"x")
    (tmp_path / "llama_cpp" / "lib").mkdir(parents=True)
    (tmp_path / "llama_cpp" / "lib" / "libllama.so").write_bytes(b"x")
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    removed = gpu_bundle.prune(tmp_path)
    assert sorted(p.name for p in bnb.iterdir()) == [
        "functional.py",
        "libbitsandbytes_cpu.so",
        "libbitsandbytes_cuda130.so",
        "libbitsandbytes_cuda132.so",
    ]
    assert "libbitsandbytes_cuda128.so" in removed and "bin" in removed
    assert not (tmp_path / "bin").exists() and not (tmp_path / "pkg" / "__pycache__").exists()
    assert not (tmp_path / "lib").exists()  # the duplicate copy of llama.cpp's libraries
    assert (tmp_path / "llama_cpp" / "lib" / "libllama.so").exists()  # the one llama_cpp loads


def test_size_counts_a_link_as_a_link(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 100_000)
    inside = tmp_path / "dir"
    inside.mkdir()
    (inside / "small").write_bytes(b"x" * 10)
    (inside / "link").symlink_to(tmp_path / "big")
    assert gpu_bundle.size(inside) == 10 + (inside / "link").lstat().st_size
    assert gpu_bundle.size(inside) < 1000


def test_unpack_installs_the_site_and_the_converters(tmp_path):
    bundle, root, site = tmp_path / "bundle", tmp_path / "repo", tmp_path / "site"
    packages, converters = tmp_path / "packages", tmp_path / "converters"
    (packages / "fastapi").mkdir(parents=True)
    (packages / "fastapi" / "__init__.py").write_text("__version__ = 'x'\n")
    converters.mkdir()
    (converters / "convert_hf_to_gguf.py").write_text("print('convert')\n")
    bundle.mkdir()
    gpu_bundle.pack(packages, bundle / "site.tar.xz")
    gpu_bundle.pack(converters, bundle / "llama.cpp.tar.xz", gpu_bundle.CONVERTERS)
    (bundle / "MANIFEST.json").write_text(json.dumps({"packages": {"fastapi": "x"}}))
    site.mkdir()
    (site / "stale.py").write_text("")
    assert gpu_bundle.unpack(site, bundle, root) == 0
    assert (site / "fastapi" / "__init__.py").read_text() == "__version__ = 'x'\n"
    assert not (site / "stale.py").exists()  # a fresh site each time
    assert (root / "llama.cpp" / "convert_hf_to_gguf.py").read_text() == "print('convert')\n"
    with tarfile.open(bundle / "llama.cpp.tar.xz") as tar:
        assert tar.getnames() == ["convert_hf_to_gguf.py"]  # only the converters that exist


def _dist(site, name, version, purelib, files):
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "WHEEL").write_text(f"Wheel-Version: 1.0\nRoot-Is-Purelib: {purelib}\n")
    (info / "METADATA").write_text(f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n")
    record = [*files, f"{info.name}/WHEEL,,", f"{info.name}/METADATA,,"]
    (info / "RECORD").write_text("".join(f"{f.split(',')[0]},,\n" for f in record))
    for f in files:
        (site / f).parent.mkdir(parents=True, exist_ok=True)
        (site / f).write_text("x")


def test_gptq_packages_travel_as_installed_except_the_compiled_ones(tmp_path):
    site = tmp_path / "gptq"
    _dist(site, "optimum", "2.3.0", "true", ["optimum/__init__.py", "optimum/gptq/q.py"])
    _dist(site, "PyPcre", "0.6.4", "false", ["pcre/__init__.py", "pcre_ext_c.cpython-311.so"])
    (site / "bin").mkdir()
    (site / "bin" / "tool").write_text("#!/x")
    (site / "optimum" / "__pycache__").mkdir()
    (site / "optimum" / "__pycache__" / "q.pyc").write_text("")
    files, compiled = gpu_bundle.gptq_parts(site)
    assert compiled == {"pypcre": "0.6.4"}
    assert sorted(files) == [
        "optimum-2.3.0.dist-info/METADATA",
        "optimum-2.3.0.dist-info/RECORD",
        "optimum-2.3.0.dist-info/WHEEL",
        "optimum/__init__.py",
        "optimum/gptq/q.py",
    ]


def test_the_installed_gptq_packages_split_as_expected():
    """requirements-gptq.txt as make setup installed it: only pypcre is compiled."""
    if not (gpu_bundle.GPTQ_SOURCE / ".installed").is_file():
        pytest.fail(f"{gpu_bundle.GPTQ_SOURCE} is not installed: run make setup")
    files, compiled = gpu_bundle.gptq_parts(gpu_bundle.GPTQ_SOURCE)
    assert compiled == {"pypcre": "0.6.4"}
    assert "gptqmodel/__init__.py" in files and "optimum/gptq/__init__.py" in files
    assert not any(f.startswith(("pcre", "bin/")) or f.endswith(".so") for f in files)


def _gptq_archive(tmp_path, sdist: bytes | None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    staged = tmp_path / "staged"
    (staged / "optimum").mkdir(parents=True)
    (staged / "optimum" / "__init__.py").write_text("")
    names = ["optimum"]
    if sdist is not None:
        (staged / "_sdist").mkdir()
        (staged / "_sdist" / "pypcre-0.6.4.tar.gz").write_bytes(sdist)
        names.append("_sdist")
    gpu_bundle.pack(staged, tmp_path / "gptq.tar.xz", names)
    return tmp_path / "gptq.tar.xz"


def test_unpack_gptq_installs_the_packages_or_says_why_not(tmp_path):
    target = tmp_path / "gptq-dir"
    archive = _gptq_archive(tmp_path, sdist=None)
    assert gpu_bundle.unpack_gptq(archive, target) is True
    assert (target / "optimum" / "__init__.py").is_file()
    assert not (target / "UNAVAILABLE.txt").exists()
    # a source that does not build: the packages stay, and the reason is written down
    archive = _gptq_archive(tmp_path / "bad", sdist=b"not a tarball")
    assert gpu_bundle.unpack_gptq(archive, target) is False
    reason = (target / "UNAVAILABLE.txt").read_text()
    assert reason.startswith("pypcre-0.6.4.tar.gz did not compile here: "), reason
    assert gpu_bundle.unpack_gptq(tmp_path / "missing.tar.xz", target) is False
    assert "the bundle has no missing.tar.xz" in (target / "UNAVAILABLE.txt").read_text()
