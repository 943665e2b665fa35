"""docs/configuration.md is generated from the Settings class and kept current."""

import subprocess
import sys

from api.config import REPO_ROOT, Settings

SCRIPT = REPO_ROOT / "scripts" / "config_doc.py"


def test_the_configuration_page_is_current_and_lists_every_setting():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    page = (REPO_ROOT / "docs" / "configuration.md").read_text()
    for name, field in Settings.model_fields.items():
        assert f"| `LLM_{name.upper()}` |" in page, name
        assert field.description, f"{name} needs a description for docs/configuration.md"


def test_a_stale_page_is_reported(tmp_path, monkeypatch):
    sys.path.insert(0, str(SCRIPT.parent))
    import config_doc

    monkeypatch.setattr(config_doc, "OUT", tmp_path / "configuration.md")
    (tmp_path / "configuration.md").write_text("# Configuration\n")
    assert config_doc.main(["--check"]) == 1
    assert config_doc.main([]) == 0
    assert config_doc.main(["--check"]) == 0
