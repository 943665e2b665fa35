"""The vendored browser files are exactly what scripts/vendor_js.py pins, with licences."""

import importlib.util

from api.config import REPO_ROOT

spec = importlib.util.spec_from_file_location("vendor_js", REPO_ROOT / "scripts" / "vendor_js.py")
vendor_js = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vendor_js)  # type: ignore[union-attr]


def test_each_package_folder_holds_its_pinned_files_and_nothing_else():
    folders = {p.name for p in vendor_js.VENDOR_DIR.iterdir()}
    assert folders == {p.name for p in vendor_js.PACKAGES}  # no stale package left behind
    for package in vendor_js.PACKAGES:
        dest = vendor_js.VENDOR_DIR / package.name
        found = {str(f.relative_to(dest)) for f in dest.rglob("*") if f.is_file()}
        assert found == {*package.files, "VERSION"}, package.name
        assert (dest / "VERSION").read_text().splitlines() == [
            f"{package.name}@{package.version}",
            package.integrity,
            *(f"patched {p.file}: {p.why}" for p in package.patches),
        ]


def test_patches_are_applied():
    patches = [(p, patch) for p in vendor_js.PACKAGES for patch in p.patches]
    assert patches  # ReDoc's CDN logo
    for package, patch in patches:
        text = (vendor_js.VENDOR_DIR / package.name / patch.file).read_text(encoding="utf-8")
        assert patch.old not in text and patch.new in text


def test_no_vendored_file_loads_from_a_cdn():
    for path in vendor_js.VENDOR_DIR.rglob("*.js"):
        text = path.read_text(encoding="utf-8")
        for host in ("cdn.", "fonts.googleapis.com", "unpkg.com"):
            assert f"://{host}" not in text, (path.name, host)


def test_each_package_ships_its_licence():
    for package in vendor_js.PACKAGES:
        assert "LICENSE" in package.files, package.name
        licence = (vendor_js.VENDOR_DIR / package.name / "LICENSE").read_text()
        assert "Permission is hereby granted" in licence or "Apache License" in licence
