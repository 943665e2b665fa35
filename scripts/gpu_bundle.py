"""The GPU check's bundle: what the device machine (no network at all) must be carried.

    .venv/bin/python scripts/gpu_bundle.py build                # here: downloads, prints sizes
    python3 scripts/gpu_bundle.py unpack --site /tmp/gpu-site   # there (stdlib only)

`build` writes the git-ignored .gpu-bundle/ (downloads are kept in .gpu-bundle-cache/):
- site.tar.xz: the Python packages the device image lacks or has at another version than
  ours, installed for the device's Python (3.12, manylinux x86_64) and pruned; the device's
  own torch, numpy, tokenizers, accelerate and the rest of its image are used as they are;
- llama.cpp.tar.xz: llama.cpp's converters (convert_hf_to_gguf.py, gguf-py, ...) from llama.cpp/;
- smollm2-135m-hf/: SmolLM2-135M's config, tokenizer and chat template (no weights: the base
  is 93 MB as a GGUF, more than may travel; the check trains a stand-in from these);
- gptq.tar.xz: the GPTQ packages (requirements-gptq.txt) as `make setup` installed them in
  .venv/gptq, pure-Python ones as installed (the same files for any Python 3) and the source
  of each compiled one (pypcre: PyPI has no Linux wheel of it for Python 3.12) in `_sdist/`;
  `unpack --gptq-dir DIR` extracts them and compiles those there (the device image has a C
  compiler, CMake and Python's headers), or writes DIR/UNAVAILABLE.txt saying why not, and
  the GPU check's GPTQ step then reports itself not run with that reason;
- MANIFEST.json: versions and sizes.

llama-cpp-python is compiled here once (a few minutes) as a portable x86-64 wheel (AVX2, no
AVX-512/AMX, no OpenMP): its libraries load through ctypes, so one build serves any Python,
and the device needs no compiler. bitsandbytes keeps only its CPU and CUDA 13 libraries (the
device's torch is a cu130 build). A call carries at most 64 MiB in all, the checkout's shared/
included: `build` adds up what would travel and says when it is too much.
"""

import argparse
import email.parser
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / ".gpu-bundle"
CACHE = ROOT / ".gpu-bundle-cache"
GPTQ_SOURCE = Path(sys.prefix) / "gptq"  # where `make setup` installs requirements-gptq.txt
LIMIT = 64 * 2**20
DEVICE_PYTHON = "3.12"
PLATFORMS = [
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
]
# Missing from the device image (KINDS.md's package list, read 2026-11-17), or there at another
# version than this project pins. Everything else comes from the image.
CARRIED = [
    "fastapi",
    "starlette",
    "pydantic",
    "pydantic-core",
    "pydantic-settings",
    "python-dotenv",
    "typing-extensions",
    "typing-inspection",
    "annotated-types",
    "opentelemetry-api",
    "python-multipart",
    "uvicorn",
    "transformers",
    "peft",
    "trl",
    "datasets",
    "dill",
    "multiprocess",
    "rouge-score",
    "nltk",
    "defusedxml",
    "bitsandbytes",
    "diskcache",
    "llama-cpp-python",
]
FALLBACK = {"bitsandbytes": "0.50.2"}  # Linux/CUDA-only pins this venv may not hold
BUILT_HERE = {"rouge-score"}  # sdist only on PyPI: a pure-Python wheel is built here
LLAMA_CMAKE = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "
    "-DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF -DLLAMA_CURL=OFF"
)
BNB_KEEP = ("libbitsandbytes_cpu.so", "libbitsandbytes_cuda13")
CONVERTERS = [
    "convert_hf_to_gguf.py",
    "convert_lora_to_gguf.py",
    "gguf-py",
    "conversion",
    "LICENSE",
    ".version",
]


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def pinned(name: str, pyproject: str) -> str:
    """The version this project runs: installed here, else its pyproject pin, else FALLBACK."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
    for line in pyproject.splitlines():
        spec = line.strip().strip('",')
        if spec.lower().startswith(f"{name}=="):
            return spec.split("==", 1)[1].split(";")[0].strip()
    if name in FALLBACK:
        return FALLBACK[name]
    raise SystemExit(f"no version for {name}: install the project (make setup) first")


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True
    )


def wheel_for(wheels: Path, name: str, version: str) -> Path | None:
    """The cached wheel of exactly this version (the cache may hold others)."""
    stem = name.replace("-", "_").lower()
    found = [f for f in wheels.glob("*.whl") if f.name.lower().startswith(f"{stem}-{version}-")]
    return min(found) if found else None


def download(versions: dict[str, str], wheels: Path) -> None:
    wheels.mkdir(parents=True, exist_ok=True)
    target = [
        f"--python-version={DEVICE_PYTHON}",
        "--implementation=cp",
        "--only-binary=:all:",
        *(f"--platform={p}" for p in PLATFORMS),
    ]
    for name, version in versions.items():
        if wheel_for(wheels, name, version):
            continue
        if name == "llama-cpp-python":
            say(f"compiling llama-cpp-python {version} (portable x86-64, CPU; minutes)")
            env = {**os.environ, "CMAKE_ARGS": LLAMA_CMAKE}
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "-q",
                    "--no-deps",
                    "--no-binary=llama-cpp-python",
                    f"{name}=={version}",
                    "-w",
                    str(wheels),
                ],
                check=True,
                env=env,
            )
        elif name in BUILT_HERE:
            _pip("wheel", "--no-deps", f"{name}=={version}", "-w", str(wheels))
        else:
            _pip("download", "--no-deps", *target, f"{name}=={version}", "-d", str(wheels))


def install(versions: dict[str, str], wheels: Path, site: Path) -> None:
    """Install these versions' wheels for the device's Python into `site`, then prune it."""
    files = [str(wheel_for(wheels, name, version)) for name, version in versions.items()]
    _pip(
        "install",
        "--no-deps",
        "--no-index",
        "--no-compile",
        "--target",
        str(site),
        f"--python-version={DEVICE_PYTHON}",
        "--implementation=cp",
        "--only-binary=:all:",
        *(f"--platform={p}" for p in PLATFORMS),
        *files,
    )
    prune(site)


def prune(site: Path) -> list[str]:
    """Drop what the device cannot use: other GPUs' bitsandbytes libraries, scripts, caches."""
    removed = []
    for lib in sorted((site / "bitsandbytes").glob("libbitsandbytes_*")):
        if not lib.name.startswith(BNB_KEEP):
            lib.unlink()
            removed.append(lib.name)
    # bin/: scripts for another interpreter; include/ and lib/: llama.cpp's headers and a
    # second copy of its libraries (llama_cpp loads its own from llama_cpp/lib)
    for junk in [site / "bin", site / "include", site / "lib", *site.rglob("__pycache__")]:
        if junk.exists():
            shutil.rmtree(junk)
            removed.append(str(junk.relative_to(site)))
    return removed


def pack(source: Path, archive: Path, names: list[str] | None = None) -> None:
    """xz tarball of `source` (or of `names` in it), symbolic links followed."""
    with tarfile.open(archive, "w:xz", dereference=True) as tar:
        for name in names or sorted(p.name for p in source.iterdir()):
            if (source / name).exists():
                tar.add(
                    source / name,
                    arcname=name,
                    filter=lambda t: None if "__pycache__" in t.name else t,
                )


def gptq_parts(gptq_dir: Path) -> tuple[list[str], dict[str, str]]:
    """(the files of `gptq_dir` that travel as installed, {name: version} of the packages
    compiled for this Python, whose sources travel instead): a distribution is compiled when
    its WHEEL says `Root-Is-Purelib: false`; its RECORD lists its files."""
    compiled: dict[str, str] = {}
    theirs: set[str] = set()
    for info in sorted(gptq_dir.glob("*.dist-info")):
        if "Root-Is-Purelib: true" in (info / "WHEEL").read_text():
            continue
        meta = email.parser.Parser().parsestr((info / "METADATA").read_text())
        compiled[meta["Name"].lower()] = meta["Version"]
        record = (info / "RECORD").read_text().splitlines()
        theirs |= {line.split(",")[0] for line in record if line}
        theirs |= {p.relative_to(gptq_dir).as_posix() for p in info.rglob("*") if p.is_file()}
    files = [
        p.relative_to(gptq_dir).as_posix()
        for p in sorted(gptq_dir.rglob("*"))
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.relative_to(gptq_dir).parts[0] not in ("bin", "_sdist")
        and p.name != ".installed"
    ]
    return [f for f in files if f not in theirs], compiled


def build_gptq(gptq_dir: Path, sdists: Path, archive: Path) -> dict[str, object]:
    """gptq.tar.xz: the pure-Python GPTQ packages and the sources of the compiled ones."""
    if not (gptq_dir / ".installed").is_file():
        raise SystemExit(f"{gptq_dir} is not installed: run make setup")
    files, compiled = gptq_parts(gptq_dir)
    sdists.mkdir(parents=True, exist_ok=True)
    for name, version in compiled.items():
        if not list(sdists.glob(f"{name}-{version}.tar.gz")):
            say(f"downloading the source of {name} {version} (compiled on the device)")
            _pip(
                "download",
                "--no-deps",
                "--no-binary=:all:",
                "--no-build-isolation",
                f"{name}=={version}",
                "-d",
                str(sdists),
            )
    with tarfile.open(archive, "w:xz") as tar:
        for name in files:
            tar.add(gptq_dir / name, arcname=name)
        for name, version in compiled.items():
            sdist = f"{name}-{version}.tar.gz"
            tar.add(sdists / sdist, arcname=f"_sdist/{sdist}")
    return {"files": len(files), "compiled": compiled}


def size(path: Path) -> int:
    """Bytes under `path` as the device tool counts them: a link is a link, not its target."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_symlink() or p.is_file())


def travelling(root: Path) -> dict[str, int]:
    """What a device call sends besides the carried bundle: tracked and untracked-not-ignored
    files, and the checkout's shared/ (sent whole, though git ignores its contents)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    tree = sum(
        size(root / f) for f in listed if f and not f.startswith("shared/") and (root / f).exists()
    )
    return {"tree": tree, "shared/": size(root / "shared") if (root / "shared").exists() else 0}


def build(args: argparse.Namespace) -> int:
    pyproject = (ROOT / "pyproject.toml").read_text()
    versions = {name: pinned(name, pyproject) for name in CARRIED}
    hf = ROOT / "shared" / "models" / "smollm2-135m" / "hf"
    if not (hf / "config.json").is_file() or not (ROOT / "llama.cpp" / CONVERTERS[0]).is_file():
        raise SystemExit("the base model or llama.cpp's converters are missing: run make setup")
    say(f"{len(versions)} packages for Python {DEVICE_PYTHON} (manylinux x86_64)")
    download(versions, CACHE / "wheels")
    shutil.rmtree(BUNDLE, ignore_errors=True)
    BUNDLE.mkdir()
    with tempfile.TemporaryDirectory() as tmp:
        install(versions, CACHE / "wheels", Path(tmp) / "site")
        say("packing site.tar.xz")
        pack(Path(tmp) / "site", BUNDLE / "site.tar.xz")
    pack(ROOT / "llama.cpp", BUNDLE / "llama.cpp.tar.xz", CONVERTERS)
    say("packing gptq.tar.xz (the GPTQ packages of .venv/gptq; compiled ones as sources)")
    gptq = build_gptq(GPTQ_SOURCE, CACHE / "sdists", BUNDLE / "gptq.tar.xz")
    shutil.copytree(
        hf,
        BUNDLE / "smollm2-135m-hf",
        symlinks=False,
        ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.gguf", ".*"),
    )
    sizes = {p.name: size(p) for p in sorted(BUNDLE.iterdir())}
    (BUNDLE / "MANIFEST.json").write_text(
        json.dumps(
            {"device_python": DEVICE_PYTHON, "packages": versions, "gptq": gptq, "sizes": sizes},
            indent=1,
        )
    )
    total = size(BUNDLE)
    others = travelling(ROOT)
    mib = 2**20
    for name, n in sizes.items():
        print(f"    {name:<22} {n / mib:7.2f} MiB")
    say(
        f".gpu-bundle is {total / mib:.1f} MiB; with the tree ({others['tree'] / mib:.1f} MiB) "
        f"{(total + others['tree']) / mib:.1f} MiB of the {LIMIT // mib} MiB a call may carry"
    )
    if total + others["tree"] > LIMIT:
        say("FAILED: too big to carry")
        return 1
    if total + others["tree"] + others["shared/"] > LIMIT:
        say(
            f"WARNING: this checkout's shared/ is {others['shared/'] / mib:.0f} MiB and travels "
            "with every call: move its contents out of the checkout for the call (README, "
            "GPU check), or the call is refused"
        )
    return 0


def unpack(site: Path, bundle: Path = BUNDLE, root: Path = ROOT, gptq: Path | None = None) -> int:
    """On the device: the packages into `site`, the converters into llama.cpp/ if absent, and
    with `gptq` the GPTQ packages there (their compiled ones built from source)."""
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    with tarfile.open(bundle / "site.tar.xz") as tar:
        tar.extractall(site, filter="data")
    converters = "llama.cpp's converters already in llama.cpp/"
    if not (root / "llama.cpp" / CONVERTERS[0]).is_file():
        with tarfile.open(bundle / "llama.cpp.tar.xz") as tar:
            tar.extractall(root / "llama.cpp", filter="data")
        converters = "llama.cpp's converters into llama.cpp/"
    say(f"unpacked {len(manifest['packages'])} packages into {site}; {converters}")
    if gptq is not None:
        unpack_gptq(bundle / "gptq.tar.xz", gptq)
    return 0


def unpack_gptq(archive: Path, target: Path, python: str = sys.executable) -> bool:
    """The GPTQ packages into `target`, each source in `_sdist/` compiled and installed there
    (pip, no index, no build isolation: the image's setuptools, compiler and CMake). False,
    with the reason in target/UNAVAILABLE.txt, where that cannot be done: the GPU check's
    GPTQ step then says it did not run, and why."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    if not archive.is_file():
        reason = f"the bundle has no {archive.name} (build it again with gpu_bundle.py build)"
        return _gptq_unavailable(target, reason)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    sources = sorted((target / "_sdist").glob("*.tar.gz"))
    for sdist in sources:
        say(f"compiling {sdist.name} for this Python (GPTQ packages)")
        done = subprocess.run(
            [python, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps"]
            + ["--no-index", "--no-build-isolation", "--no-compile", "--upgrade"]
            + ["--target", str(target), str(sdist)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            tail = " ".join((done.stdout + done.stderr).strip().splitlines()[-3:])[-600:]
            return _gptq_unavailable(target, f"{sdist.name} did not compile here: {tail}")
    shutil.rmtree(target / "_sdist", ignore_errors=True)
    say(f"GPTQ packages into {target} ({len(sources)} compiled here)")
    return True


def _gptq_unavailable(target: Path, reason: str) -> bool:
    (target / "UNAVAILABLE.txt").write_text(reason + "\n")
    say(f"GPTQ packages not available: {reason}; the GPTQ step will not run")
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="make .gpu-bundle/ here (needs the package index)")
    unpack_parser = sub.add_parser("unpack", help="install .gpu-bundle/ on the device")
    unpack_parser.add_argument(
        "--site", type=Path, required=True, help="directory for the packages (put it on PYTHONPATH)"
    )
    unpack_parser.add_argument("--bundle", type=Path, default=BUNDLE, help="the carried bundle")
    unpack_parser.add_argument(
        "--gptq-dir", type=Path, help="directory for the GPTQ packages (LLM_GPTQ_DIR)"
    )
    args = parser.parse_args(argv)
    if args.command == "build":
        return build(args)
    return unpack(args.site, args.bundle, gptq=args.gptq_dir)


if __name__ == "__main__":
    sys.exit(main())
