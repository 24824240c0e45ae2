#!/usr/bin/env bash
# Create .venv with cefrtune and its test tools. Safe to rerun.
# --test also installs Debian's chromium for the teacher page's browser test (Playwright drives it;
# no browser is downloaded by Playwright).
# torch is pinned to the CPU build that pip finds on this kind of machine; an unpinned `torch`
# can pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
if [ "${1:-}" = "--test" ] && [ ! -x /usr/bin/chromium ]; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
fi
