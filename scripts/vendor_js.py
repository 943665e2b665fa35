#!/usr/bin/env python3
"""Refresh the browser files the API serves itself (api/static/vendor/) from the npm registry.

The API must work on hosts without internet, so pages such as /docs load no script, style
or icon from a CDN: the few files they need are committed under api/static/vendor/<package>/,
each package with its licence files. This script is how they get there. For each entry of
PACKAGES it fetches the package at its pinned version with `npm pack`, checks the tarball's
sha512 against the pinned `integrity`, and replaces the package's folder with the listed
files, after `patches` (each must match exactly once: a new version that moved the text
stops the script). Run it after changing PACKAGES and commit the result:

    python scripts/vendor_js.py            # every package
    python scripts/vendor_js.py redoc      # only the named ones

To move a package to another version, change `version`, run the script once: it stops and
prints the new tarball's integrity to pin. Needs `npm` (a fetch only; nothing is installed).
"""

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

VENDOR_DIR = Path(__file__).resolve().parent.parent / "api" / "static" / "vendor"


@dataclass(frozen=True)
class Patch:
    """`old` -> `new` in one vendored file; `why` is recorded in the package's VERSION file."""

    file: str
    old: str
    new: str
    why: str


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the tarball's sha512 as npm writes it ("sha512-<base64>")
    files: tuple[str, ...]  # paths inside the package, kept as they are under vendor/<name>/
    patches: tuple[Patch, ...] = ()


PACKAGES = [
    Package(
        "swagger-ui-dist",
        "5.35.0",
        "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbA"
        "hw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==",
        (
            "swagger-ui-bundle.js",
            "swagger-ui.css",
            "favicon-32x32.png",
            "LICENSE",
            "NOTICE",
            "swagger-ui-bundle.js.LICENSE.txt",
        ),
    ),
    # ReDoc 2: the major version FastAPI's get_redoc_html is written for.
    Package(
        "redoc",
        "2.5.4",
        "sha512-M6jWhG1qoBnH6TFmzJnstyCZ87HmOY/UzDm78mHiYih"
        "EdlV/YcS9ogOo1NlElnJMeLsyxHFe2yFc4sNjHTrABQ==",
        ("bundles/redoc.standalone.js", "bundles/redoc.standalone.js.LICENSE.txt", "LICENSE"),
        # The sidebar's "API docs by Redocly" link loads its logo from Redocly's CDN,
        # with no option to turn it off; an empty image fails, and ReDoc then drops it.
        (
            Patch(
                "bundles/redoc.standalone.js",
                '"https://cdn.redoc.ly/redoc/logo-mini.svg"',
                '"data:,"',
                "no logo from cdn.redoc.ly in the sidebar",
            ),
        ),
    ),
    # The Studio's loss curves (api/studio/): small, no dependencies, an ES module build.
    Package(
        "uplot",
        "1.6.32",
        "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTX"
        "ImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
        ("dist/uPlot.esm.js", "dist/uPlot.min.css", "LICENSE"),
    ),
]


def sri_sha512(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch(package: Package, into: Path) -> Path:
    """The package's tarball, by `npm pack` (the registry's own client), integrity checked."""
    out = subprocess.run(
        [
            "npm",
            "pack",
            f"{package.name}@{package.version}",
            "--json",
            "--silent",
            "--pack-destination",
            str(into),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    tarball = into / json.loads(out.stdout)[0]["filename"]
    found = sri_sha512(tarball)
    if found != package.integrity:
        sys.exit(
            f"{package.name}@{package.version}: the tarball's integrity is {found}, "
            f"not the pinned {package.integrity}. If you changed the version on purpose, "
            "pin the new value in PACKAGES (scripts/vendor_js.py) and run again."
        )
    return tarball


def unpack(package: Package, tarball: Path) -> Path:
    """Replace vendor/<name>/ with the listed files (npm tarballs keep them under package/)."""
    dest = VENDOR_DIR / package.name
    staged = dest.with_name(dest.name + ".new")
    shutil.rmtree(staged, ignore_errors=True)
    with tarfile.open(tarball) as tar:
        for name in package.files:
            member = tar.getmember(f"package/{name}")  # KeyError names a file not in it
            target = staged / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
    for patch in package.patches:
        target = staged / patch.file
        data, old = target.read_bytes(), patch.old.encode()
        if data.count(old) != 1:
            sys.exit(
                f"{package.name}@{package.version}: {patch.old!r} is in {patch.file} "
                f"{data.count(old)} times, not once; review the patch ({patch.why})"
            )
        target.write_bytes(data.replace(old, patch.new.encode()))
    (staged / "VERSION").write_text(
        "".join(
            [f"{package.name}@{package.version}\n{package.integrity}\n"]
            + [f"patched {p.file}: {p.why}\n" for p in package.patches]
        )
    )
    shutil.rmtree(dest, ignore_errors=True)
    staged.rename(dest)
    return dest


def main(names: list[str]) -> None:
    unknown = set(names) - {p.name for p in PACKAGES}
    if unknown:
        sys.exit(f"not in PACKAGES: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory() as tmp:
        for package in PACKAGES:
            if names and package.name not in names:
                continue
            print(f"==> vendoring {package.name}@{package.version}")
            dest = unpack(package, fetch(package, Path(tmp)))
            size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
            print(
                f"    {dest.relative_to(VENDOR_DIR.parent.parent.parent)}: "
                f"{len(package.files)} files, {size / 1e6:.1f} MB"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
