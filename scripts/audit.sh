#!/usr/bin/env bash
# Audit the installed environment for known vulnerabilities with pip-audit (`make audit`).
#
# Fails closed: pip-audit reports a package it cannot look up as "skipped" and still exits 0,
# so an unreachable advisory database would pass silently. This script first asks the
# database about a canary (jinja2 2.10, which has published advisories) and stops with exit
# status 2 when the answer does not list them; then it audits every installed distribution
# at its exact version with --strict, so a package that cannot be looked up fails the run.
#
# PYTHON (default .venv/bin/python), AUDIT_SERVICE (pypi or osv; default pypi),
# AUDIT_OSV_URL (another OSV query endpoint, with AUDIT_SERVICE=osv) and AUDIT_ARGS (extra
# pip-audit arguments, e.g. --ignore-vuln ID) can be set.
set -euo pipefail

PYTHON=${PYTHON:-.venv/bin/python}
SERVICE=${AUDIT_SERVICE:-pypi}
CANARY="jinja2==2.10"
service_args=(--vulnerability-service "$SERVICE")
if [[ -n "${AUDIT_OSV_URL:-}" ]]; then service_args+=(--osv-url "$AUDIT_OSV_URL"); fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! "$PYTHON" -m pip_audit --version > /dev/null 2>&1; then
    echo "==> pip-audit is not installed in $PYTHON's environment: run \`make setup\` (test extra)" >&2
    exit 2
fi

echo "==> checking that the advisory database ($SERVICE) answers: canary $CANARY"
echo "$CANARY" > "$work/canary.txt"
"$PYTHON" -m pip_audit "${service_args[@]}" --disable-pip --no-deps \
    --progress-spinner off -f json -o "$work/canary.json" -r "$work/canary.txt" \
    > "$work/canary.log" 2>&1 || true
if ! "$PYTHON" - "$work/canary.json" <<'EOF'
import json, sys
try:
    deps = json.load(open(sys.argv[1]))["dependencies"]
except (OSError, ValueError, KeyError):
    sys.exit(1)
sys.exit(0 if any(d.get("vulns") for d in deps) else 1)
EOF
then
    echo "==> FAILED: the advisory database could not be reached or gave no answer for the" >&2
    echo "    canary, so nothing was audited (pip-audit would have skipped every package and" >&2
    echo "    passed). pip-audit said:" >&2
    { tail -n 4 "$work/canary.log"; cat "$work/canary.json" 2>/dev/null || true; } | sed 's/^/    /' >&2
    echo "    Run \`make audit\` where https://pypi.org/pypi/<name>/<version>/json (or, with" >&2
    echo "    AUDIT_SERVICE=osv, https://api.osv.dev) is reachable." >&2
    exit 2
fi

# Every installed distribution at its exact version; the project itself (editable) is not
# on PyPI, and a local version label (torch 2.13.0+cpu) is audited as its public version.
"$PYTHON" -m pip list --format=freeze --exclude-editable --disable-pip-version-check \
    | sed -E 's/\+[A-Za-z0-9.]+$//' > "$work/installed.txt"
echo "==> auditing $(wc -l < "$work/installed.txt") installed distributions"
# shellcheck disable=SC2086
"$PYTHON" -m pip_audit "${service_args[@]}" --disable-pip --no-deps --strict \
    --progress-spinner off --desc on -r "$work/installed.txt" ${AUDIT_ARGS:-}
echo "==> no known vulnerabilities"
