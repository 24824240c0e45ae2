"""`backend: unsloth`: the seed's own setup (Unsloth's loader and LoRA on one NVIDIA GPU).

Unsloth is an optional extra (`pip install cefrtune[unsloth]`), never a requirement, and it only
runs on CUDA. This module checks that it can run and says what to use otherwise.
"""

from __future__ import annotations

import importlib.util


class BackendUnavailable(RuntimeError):
    pass


def check_unsloth() -> None:
    import torch

    problems = []
    if not torch.cuda.is_available():
        problems.append("no CUDA device is visible (Unsloth trains on NVIDIA GPUs only)")
    if importlib.util.find_spec("unsloth") is None:
        problems.append("the package is not installed (`pip install 'cefrtune[unsloth]'`)")
    if problems:
        raise BackendUnavailable(
            "backend 'unsloth' cannot run here: " + "; ".join(problems)
            + ". Use the default backend instead (`--set backend=torch`), which runs on CPU and GPU "
            "and under accelerate/torchrun."
        )
    raise BackendUnavailable(
        "backend 'unsloth' is not wired into this cefrtune version yet; use the default backend (`--set backend=torch`)."
    )
