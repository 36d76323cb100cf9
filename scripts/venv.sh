#!/usr/bin/env bash
# The pinned tool venv in .venv/ (requirements-dev.txt), made with $PYTHON
# (default python3; the LiteLLM lock is for Python 3.11). `make venv` and the
# GitHub workflows' setup (.github/actions/tool-venv) both run this.
set -euo pipefail
cd "$(dirname "$0")/.."
test -x .venv/bin/python || "${PYTHON:-python3}" -m venv .venv
.venv/bin/pip install -q --upgrade pip==25.3
.venv/bin/pip install -q -r requirements-dev.txt
touch .venv/.stamp
