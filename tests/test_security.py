"""Security properties checked on the code base itself (static) and on the pins.

Weights are loaded from safetensors (or a GGUF) only, never from pickles, and no model
code from a checkpoint is run; the known advisories of the stack are either fixed by the
pins or written down in SECURITY.md, whose operator duties name real settings and targets.
"""

import ast
import re
import tomllib

import pytest
import yaml

from api.config import REPO_ROOT

SOURCES = sorted(
    [
        *(REPO_ROOT / "api").rglob("*.py"),
        *(REPO_ROOT / "scripts").rglob("*.py"),
        REPO_ROOT / "load_base_model.py",
    ]
)
SERVICE = [p for p in SOURCES if "scripts" not in p.relative_to(REPO_ROOT).parts]
SECURITY_MD = (REPO_ROOT / "SECURITY.md").read_text()
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
PINS = dict(
    # `name[extras]==version ; marker`: the name and the version
    re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;]+)(?:\s*;.*)?", d).groups()
    for d in PYPROJECT["project"]["dependencies"]
)  # type: ignore[union-attr]

# Things that run code from a file or a checkpoint when it is loaded.
DANGEROUS = {
    r"trust_remote_code\s*=\s*True": "runs Python shipped with a checkpoint",
    r"weights_only\s*=\s*False": "unpickles arbitrary objects",
    r"\btorch\.load\(": "unpickles (weights_only or not, resuming belongs to the Trainer)",
    r"^\s*(import pickle|from pickle import|import dill|import joblib)": "pickle loading",
    r"\bpickle\.loads?\(": "pickle loading",
    r"allow_pickle\s*=\s*True": "numpy unpickling",
    r"use_safetensors\s*=\s*False": "allows pickled weights",
}


def _calls(tree: ast.AST, name: str):
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == name
        ):
            yield node


def _receiver(call: ast.Call) -> str:
    target = call.func.value  # type: ignore[attr-defined]
    return target.id if isinstance(target, ast.Name) else ast.unparse(target)


def _functions(tree: ast.AST):
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]


def _enclosing(tree: ast.AST, call: ast.Call) -> ast.AST:
    inner = [f for f in _functions(tree) if f.lineno <= call.lineno <= (f.end_lineno or f.lineno)]
    return max(inner, key=lambda f: f.lineno) if inner else tree


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_nothing_loads_pickles_or_remote_code(path):
    text = path.read_text()
    found = [
        f"{path.name}:{text.count(chr(10), 0, m.start()) + 1}: {why}"
        for pattern, why in DANGEROUS.items()
        for m in re.finditer(pattern, text, flags=re.MULTILINE)
    ]
    assert found == []


def test_the_scan_finds_what_it_looks_for():
    sample = (
        "model = X.from_pretrained(d, trust_remote_code=True)\nimport pickle\n"
        "torch.load(f, weights_only=False)\n"
    )
    hits = [p for p in DANGEROUS if re.search(p, sample, flags=re.MULTILINE)]
    assert len(hits) == 4


def test_service_loads_model_weights_from_safetensors_or_gguf_only():
    """Every model weight load in the service passes use_safetensors=True (or reads a
    GGUF, which holds tensors and metadata only); adapters are ours, saved as safetensors."""
    loads = 0
    for path in SERVICE:
        tree = ast.parse(path.read_text())
        for call in _calls(tree, "from_pretrained"):
            receiver = _receiver(call)
            for keyword in call.keywords:
                if keyword.arg == "trust_remote_code":
                    assert (
                        isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                    ), f"{path.name}:{call.lineno}"
            if not receiver.startswith("AutoModel"):
                continue
            loads += 1
            scope = ast.unparse(_enclosing(tree, call))
            assert (
                re.search(r"""use_safetensors['"]?\s*[:=]\s*True""", scope) or "gguf_file" in scope
            ), f"{path.name}:{call.lineno} may load pickled weights"
    assert loads >= 3  # the recipe, the export merge, provisioning from a GGUF


def test_adapters_and_checkpoints_are_saved_as_safetensors():
    recipe = (REPO_ROOT / "api" / "finetune" / "recipe.py").read_text()
    assert "safe_serialization=False" not in recipe
    assert "save_safetensors=False" not in recipe


def test_uploaded_pdfs_are_stored_under_generated_names():
    documents = (REPO_ROOT / "api" / "rag" / "documents.py").read_text()
    upload = (REPO_ROOT / "api" / "rag" / "upload.py").read_text()
    assert 'stored = folder / f"{import_id}.pdf"' in documents
    assert "import_id = uuid.uuid4().hex" in documents
    assert 'incoming_dir / f"{uuid.uuid4().hex}.part"' in upload


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


@pytest.mark.parametrize(
    "package,floor,advisory",
    [
        ("starlette", "1.3.1", "CVE-2026-54283"),
        ("python-multipart", "0.0.27", "CVE-2026-42561"),
        ("langchain-core", "1.2.5", "CVE-2025-68664"),
        ("torch", "2.10.0", "CVE-2026-24747"),
        ("transformers", "5.3.0", "CVE-2026-4372"),
        ("pypdf", "6.16.1", "CVE-2026-84310"),
    ],
)
def test_pins_are_at_or_above_the_fixed_releases(package, floor, advisory):
    if package in PINS:
        pinned = PINS[package]
    else:  # a transitive dependency: what the environment has
        from importlib.metadata import version

        pinned = version(package)
    assert _version(pinned) >= _version(floor), f"{package} {pinned} is affected by {advisory}"


def test_chromadb_advisory_is_fixed_or_documented():
    """CVE-2026-45829 affects chromadb <= 1.5.9; until a fixed release exists the pin stays
    and SECURITY.md says why it is not exposed."""
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    image = compose["services"]["chromadb"]["image"].split(":")[1]
    for version in (PINS["chromadb"], image):
        if _version(version) <= (1, 5, 9):
            assert "CVE-2026-45829" in SECURITY_MD and "GHSA-f4j7-r4q5-qw2c" in SECURITY_MD


def test_security_md_names_the_key_the_audit_and_the_weight_rules():
    for phrase in ("LLM_API_KEY", "make audit", "safetensors", "trust_remote_code"):
        assert phrase in SECURITY_MD


def test_the_settings_and_targets_security_md_names_exist():
    """Every `LLM_*` setting SECURITY.md tells the operator about is a real setting, and
    `make audit` is a Makefile target that runs scripts/audit.sh."""
    from api.config import Settings

    named = {n.rstrip("_") for n in re.findall(r"\bLLM_([A-Z0-9_]+)", SECURITY_MD)}
    assert {"API_KEY", "RAG_PARSE"} <= named  # LLM_RAG_PARSE_*: a family of settings
    fields = [name.upper() for name in Settings.model_fields]
    assert [n for n in named if not any(f == n or f.startswith(n + "_") for f in fields)] == []
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^audit:.*\n\t.*scripts/audit\.sh", makefile, flags=re.MULTILINE)
