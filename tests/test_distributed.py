"""A 2-process CPU DDP run (gloo, through torchrun) ends where a 1-process run with the same global
batch and seed ends, and writes each artifact once."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).parent / "ddp_worker.py"


def _run(cmd, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_process_ddp_matches_single_process(tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    _run([sys.executable, str(WORKER), str(single), "4"], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
          str(WORKER), str(ddp), "2"], tmp_path)
    a = json.loads((single / "result.json").read_text())
    b = json.loads((ddp / "result.json").read_text())
    assert a["effective_batch"] == b["effective_batch"] == 8 and b["world_size"] == 2
    assert b["final_train_loss"] == pytest.approx(a["final_train_loss"], rel=1e-3)
    assert b["best_eval_loss"] == pytest.approx(a["best_eval_loss"], rel=1e-3)
    assert a["losses"][0] != a["losses"][-1]
    # each artifact written once, by rank 0
    assert len(list((ddp / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (ddp / "checkpoints").iterdir()) == ["last"]
    assert (ddp / "adapter" / "adapter_model.safetensors").exists()
