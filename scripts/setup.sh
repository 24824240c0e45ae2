#!/usr/bin/env bash
# Create .venv with cefrtune (what `cefrtune run` needs). Safe to rerun.
# --test also installs the test tools, llama.cpp (for the export tests) and Debian's chromium for the
# teacher page's browser test (Playwright drives it; no browser is downloaded by Playwright).
# torch is pinned to the CPU build that pip finds on this kind of machine; an unpinned `torch`
# can pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
if [ "${1:-}" != "--test" ]; then
    .venv/bin/python -m pip install -q -e .
    exit 0
fi
# llama.cpp (llama-cpp-python) for `cefrtune export --quant q4_k_m` and the export tests: PyPI has
# only its source package, so it is built once (CPU only, portable flags, several minutes) into a
# wheel cache outside the repository, keyed by version, and installed from there on every rerun.
LLAMA_CPP_PYTHON=0.3.36
WHEELS="${CEFRTUNE_CACHE:-$HOME/.cache/cefrtune}/wheels/llama-cpp-python-$LLAMA_CPP_PYTHON"
if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $LLAMA_CPP_PYTHON once into $WHEELS (several minutes) ..."
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        nice -n 10 .venv/bin/python -m pip wheel -q --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$LLAMA_CPP_PYTHON" -w "$WHEELS"
fi
.venv/bin/python -m pip install -q "$WHEELS"/llama_cpp_python-*.whl
.venv/bin/python -m pip install -q -e ".[test]"
if [ ! -x /usr/bin/chromium ]; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
fi
