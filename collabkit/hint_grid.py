"""Bench: the grids behind the notebooks' hints (02 §7 "beat the lecture", 04's neural model).

`collabkit bench --grid` trains each setting below once on the seed-42 split, one thread, and
merges the figures into bench/results.json under "hint_grid" (the rest of the file is kept).
The hints in 02 and 04 quote what these grids found, and grader_tests/test_prose_numbers.py
checks them against this file, so a hint cannot drift from its measurement. Times are CPU
seconds of the training alone (steadier than wall time on a shared machine).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

# 02 §7: dot-product models, 50 factors, y_range (0, 5.5): (bs, epochs, lr, wd).
DOT_GRID = [
    (bs, epochs, lr, wd)
    for bs in (512, 1024)
    for epochs in (5, 10, 15)
    for lr in (3e-3, 1e-2, 2e-2)
    for wd in (0.1, 0.2, 0.5)
]
# 04: the fixed architecture (emb 50/50, layers [128, 64]) at bs 1024: (epochs, lr, wd).
NEURAL_GRID = [(epochs, lr, wd) for epochs in (2, 3, 5) for lr in (3e-3, 1e-2) for wd in (0.01, 0.5, 1.0, 2.0)]


def _train(dls, make, epochs, lr, wd) -> dict:
    from fastai.torch_core import set_seed

    from . import nb as ck

    set_seed(ck.SEED, reproducible=True)
    learn = make(dls)
    start = time.process_time()
    ck.fit(learn, epochs, lr, wd)
    fit_cpu_s = time.process_time() - start
    return {"fit_cpu_s": round(fit_cpu_s, 2), "valid_mse": round(ck.valid_mse(learn), 4)}


def run_grid() -> dict:
    from fastai.collab import collab_learner

    from . import nb as ck

    ck.setup()
    out = {"dot": [], "neural": []}
    dls = {bs: ck.kit_dls(bs=bs) for bs in (512, 1024)}
    for bs, epochs, lr, wd in DOT_GRID:
        r = _train(dls[bs], lambda d: collab_learner(d, n_factors=50, y_range=ck.Y_RANGE), epochs, lr, wd)
        out["dot"].append({"bs": bs, "epochs": epochs, "lr": lr, "wd": wd, **r})
        print(f"  dot bs={bs:4d} epochs={epochs:2d} lr={lr:g} wd={wd:g}: {r}", flush=True)
    nn_kw = dict(use_nn=True, emb_szs={"user": 50, "title": 50}, layers=[128, 64], y_range=ck.Y_RANGE)
    for epochs, lr, wd in NEURAL_GRID:
        r = _train(dls[1024], lambda d: collab_learner(d, **nn_kw), epochs, lr, wd)
        out["neural"].append({"bs": 1024, "epochs": epochs, "lr": lr, "wd": wd, **r})
        print(f"  neural epochs={epochs} lr={lr:g} wd={wd:g}: {r}", flush=True)
    return out


def run(out: Path) -> dict:
    """Run the grids and merge them into `out` (bench/results.json) under "hint_grid"."""
    from .bench import machine

    grid = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(), **run_grid()}
    data = json.loads(out.read_text()) if out.is_file() else {}
    data["hint_grid"] = grid
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    return grid
