#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv and install findspots into it.
# Works on a fresh Debian machine: when Python's venv module is missing it installs python3-venv
# through apt (needs root). Usage: bash deploy/setup-env.sh [extras], e.g. "test".
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    else
        echo "setup-env: Python's venv module is missing; install python3-venv (Debian) first" >&2
        exit 1
    fi
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
spec="."
[ -n "$extras" ] && spec=".[$extras]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec"
