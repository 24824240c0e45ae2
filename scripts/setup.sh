#!/usr/bin/env bash
# Create .venv with cefrtune and its test tools. Safe to rerun.
# torch is pinned to the CPU build that pip finds on this kind of machine; an unpinned `torch`
# can pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
