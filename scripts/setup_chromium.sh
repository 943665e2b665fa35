#!/usr/bin/env bash
# Chromium for the browser test (tests/test_docs_browser.py): Debian's package, which
# Playwright drives as its browser (Playwright's own browser download needs internet that
# CI and air-gapped hosts lack). Only `make test` needs it; `make run` does not.
# Idempotent: does nothing when /usr/bin/chromium is there.
set -euo pipefail
CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
  echo "==> chromium already installed ($CHROMIUM)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "installing chromium needs root (or sudo)" >&2; exit 1; }
  SUDO=sudo
fi
echo "==> installing chromium from Debian's packages (for the browser test)"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium
test -x "$CHROMIUM"
