"""Bench: how fast the assignment runs, and how fast a class is graded, beside plain nbgrader.

Figures are printed and written to bench/results.json; nothing here asserts a speed.
Every figure is a median over repetitions, measured in this one run, so the baseline and
the kit share the machine's state. The core count and load average at the start are
recorded so that a noisy run can be recognised.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import ASSIGNMENT
from .course import Course, tool_env
from .errors import KitError

MODEL_CELLS = {  # the cells that train, and the reference key holding their validation MSE
    "lecture recipe (02 learn)": ("02_dot_product.ipynb", "learn", "lecture_mse"),
    "tuned reference (02 tuned_learn)": ("02_dot_product.ipynb", "tuned_learn", "tuned_mse"),
    "neural (04 learn_nn)": ("04_neural_cf.ipynb", "learn_nn", "neural_mse"),
}


def machine() -> dict:
    import torch

    return {
        "cores": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


class PeakRSS:
    """Samples, every 0.2 s, the processes below this one: the largest single process's RSS (a kernel),
    the largest total RSS, and, counting shared pages once (PSS: a fork server's pages are shared by
    its kernels), the largest total and the largest grading worker (a process two levels below this
    one, such as a Dask worker, with everything below it: its fork server, worker process, kernel)."""

    def __init__(self):
        import psutil

        self.me = psutil.Process()
        self.peak = self.peak_total = self.peak_pss_total = self.peak_worker_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        def pss(p) -> int:
            try:
                return p.memory_full_info().pss
            except (psutil.Error, AttributeError):
                return 0

        while not self._stop.wait(0.2):
            try:
                total = 0
                for p in self.me.children(recursive=True):
                    try:
                        rss = p.memory_info().rss
                    except psutil.Error:
                        continue
                    total += rss
                    self.peak = max(self.peak, rss)
                self.peak_total = max(self.peak_total, total)
                workers = [w for c in self.me.children() for w in c.children()]
                sums = [pss(w) + sum(pss(p) for p in w.children(recursive=True)) for w in workers]
                self.peak_worker_pss = max([self.peak_worker_pss, *sums])
                self.peak_pss_total = max(self.peak_pss_total, sum(pss(p) for p in self.me.children(recursive=True)))
            except psutil.Error:
                pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _execute_one(path: str) -> dict:
    """Run in a child process: execute one solution notebook; wall time, kernel peak RSS, cell times."""
    import resource

    from .reference import execute

    with tempfile.TemporaryDirectory() as tmp:
        cells: dict = {}
        wall = execute(Path(path), Path(tmp), Path(tmp) / "reference.json", {}, cell_times=cells)
    rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the kernel, reaped at shutdown
    return {"wall_s": wall, "peak_rss_mb": rss_kb / 1024, "cells": cells}


def time_notebooks(course: Course, names: list[str], reps: int) -> dict:
    out = {}
    env = tool_env(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", COLLABKIT_REFERENCE=str(course.reference))
    for name in names:
        runs = []
        for _ in range(reps):
            code = (
                f"import json, collabkit.bench as b; print(json.dumps(b._execute_one({str(course.source / name)!r})))"
            )
            run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
            if run.returncode != 0:
                raise KitError(f"{name} failed to execute:\n{run.stderr[-2000:]}")
            runs.append(json.loads(run.stdout.strip().splitlines()[-1]))
        cells = {gid: statistics.median(r["cells"][gid] for r in runs) for gid in runs[0]["cells"]}
        out[name] = {
            "wall_s": statistics.median(r["wall_s"] for r in runs),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
            "runs": len(runs),
            "cells": cells,
        }
        print(f"  {name}: {out[name]['wall_s']:.1f} s, {out[name]['peak_rss_mb']:.0f} MB", flush=True)
    return out


def _data_path_one(fast: bool) -> dict:
    """Run in a child process: the lecture recipe and ck.train_dot on fastai's stock loaders or the kit's."""
    import collabkit.nb as ck

    ck.setup()
    from fastai.collab import collab_learner
    from fastai.torch_core import set_seed

    dls = ck.kit_dls(fast=fast)
    start = time.perf_counter()
    for _ in dls.train:  # one pass of batches alone, no model
        pass
    loader = time.perf_counter() - start
    set_seed(ck.SEED, reproducible=True)
    learn = collab_learner(dls, n_factors=50, y_range=ck.Y_RANGE, wd=0.1)
    start, cpu = time.perf_counter(), time.process_time()  # CPU time too: less at the mercy of a shared machine
    ck.fit(learn, 5, 5e-3, wd=0.1)
    lecture, lecture_cpu = time.perf_counter() - start, time.process_time() - cpu
    mse = ck.valid_mse(learn)
    start = time.perf_counter()
    ck.train_dot("fast", fast=fast)
    dot = time.perf_counter() - start
    return {
        "loader_pass_s": loader,
        "lecture_epoch_s": lecture / 5,
        "lecture_epoch_cpu_s": lecture_cpu / 5,
        "lecture_mse": mse,
        "train_dot_s": dot,
    }


def time_data_path(reps: int) -> dict:
    """fastai's stock tabular loaders against the kit's (collabkit.fastdl: the same batches), one child per
    run, alternating, so both see the same machine; medians of `reps`."""
    env = tool_env(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    runs: dict = {"stock": [], "kit": []}
    for _ in range(reps):
        for label, fast in (("stock", False), ("kit", True)):
            code = f"import json, collabkit.bench as b; print(json.dumps(b._data_path_one({fast})))"
            run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
            if run.returncode != 0:
                raise KitError(f"the data-path timing failed:\n{run.stderr[-2000:]}")
            runs[label].append(json.loads(run.stdout.strip().splitlines()[-1]))
    out = {label: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for label, rs in runs.items()}
    out["runs"] = reps
    print(
        f"  lecture recipe per epoch: stock {out['stock']['lecture_epoch_s']:.1f} s, kit {out['kit']['lecture_epoch_s']:.1f} s",
        flush=True,
    )
    return out


def _grade_batch(mode: str, course: Path, reference: Path, students: list[str]) -> dict:
    """Grade `students` in the throwaway `course` one way; wall time, CPU seconds and peak RSS of the
    grading processes (CPU: user + system of every process the command started and reaped, kernels
    included)."""
    import resource

    env = tool_env(
        OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", COLLABKIT_REFERENCE=str(reference), COLLABKIT_STOCK_AUTOGRADE="1"
    )  # the baseline: stock autograde, which the kit's settings refuse
    if mode == "nbgrader":
        cmd = [sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--force", "--log-level=WARN"]
        if len(students) == 1:  # nbgrader takes one --student; without it, it grades everyone submitted
            cmd.append(f"--student={students[0]}")
    else:  # "collabkit --workers=N" (warm kernels) or "collabkit --workers=N --cold-kernels"
        workers = mode.split("=")[1].split()[0]
        cmd = [
            sys.executable,
            "-m",
            "collabkit",
            "grade",
            ASSIGNMENT,
            "--root",
            str(course),
            "--workers",
            workers,
            *(["--cold-kernels"] if mode.endswith("--cold-kernels") else []),
            *[f"--student={s}" for s in students],
        ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with PeakRSS() as rss:
        run = subprocess.run(cmd, cwd=course, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if run.returncode != 0:
        raise KitError(f"{mode} grading failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_s_per_student": cpu / len(students),
        "peak_rss_mb": rss.peak / 2**20,
        "peak_total_mb": rss.peak_total / 2**20,
        "peak_pss_total_mb": rss.peak_pss_total / 2**20,
        "peak_worker_pss_mb": rss.peak_worker_pss / 2**20,
    }


def time_grading(home: Course, names: list[str], n: int, reps: int, workers: list[int]) -> dict:
    from .samples import make_course, place, submission

    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="collabkit-bench-") as tmp:
        course = make_course(Path(tmp) / "course", home.root)
        (course / "solutions").mkdir()
        shutil.copy(home.reference, course / "solutions" / "reference.json")
        solved = {name: submission(course, name) for name in names}
        students = [f"s{i:02d}" for i in range(1, n + 1)]
        for s in students:
            place(course, s, solved)
        for kernels, flag in (("warm", ""), ("cold", " --cold-kernels")):  # one student, start to grades written
            one = [
                _grade_batch(f"collabkit --workers=1{flag}", course, home.reference, students[:1]) for _ in range(reps)
            ]
            results[f"one_submission_{kernels}"] = {
                "wall_s": statistics.median(r["wall_s"] for r in one),
                "cpu_s": statistics.median(r["cpu_s"] for r in one),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in one),
                "peak_worker_pss_mb": max(r["peak_worker_pss_mb"] for r in one),
                "runs": reps,
            }
            print(
                f"  one submission, {kernels} kernels: {results[f'one_submission_{kernels}']['wall_s']:.1f} s",
                flush=True,
            )
        modes = [f"collabkit --workers={w}{flag}" for flag in (" --cold-kernels", "") for w in workers]
        for mode in ["nbgrader", *modes]:  # the kit: a local Dask cluster
            runs = [_grade_batch(mode, course, home.reference, students)]  # once: the batch already spans n submissions
            wall = runs[0]["wall_s"]
            results[mode] = {
                "wall_s": wall,
                "per_minute": 60 * n / wall,
                "cpu_s_per_student": runs[0]["cpu_s_per_student"],
                "runs": 1,
                **{k: runs[0][k] for k in ("peak_rss_mb", "peak_total_mb", "peak_pss_total_mb", "peak_worker_pss_mb")},
            }
            print(f"  {mode}: {n} submissions in {wall:.1f} s", flush=True)
        base = results["nbgrader"]["wall_s"]
        for mode in results:
            if mode.startswith("collabkit"):
                results[mode]["speedup_vs_nbgrader"] = base / results[mode]["wall_s"]
    results["n"] = n
    return results


TRIVIAL = {  # one graded cell that needs nothing: what is left is the cost of grading itself
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "cells": [
        {
            "cell_type": "code",
            "id": "trivial-test",
            "metadata": {
                "nbgrader": {
                    "grade": True,
                    "grade_id": "test_trivial",
                    "locked": True,
                    "points": 1,
                    "schema_version": 3,
                    "solution": False,
                    "task": False,
                }
            },
            "source": "assert 1 + 1 == 2",
            "outputs": [],
            "execution_count": None,
        }
    ],
}


def time_dask_overhead(home: Course, reps: int) -> dict:
    """A trivial notebook graded `reps` times by the kit in this process without Dask (the task's code
    called directly), and through Dask (a local cluster of one worker, started once and timed apart);
    medians of the wall time from sanitizing to grades written."""
    from .grading import task as on_worker
    from .grading.batch import dask_client, finish, load_assignment, prepare
    from .grading.records import Limits, TaskResult
    from .samples import make_course, place

    limits = Limits(timeout=60, notebook_timeout=120)
    with tempfile.TemporaryDirectory(prefix="collabkit-bench-") as tmp:
        course = Course.open(make_course(Path(tmp) / "course", home.root, {"trivial.ipynb": TRIVIAL}, reference={}))
        place(course.root, "s01", {"trivial.ipynb": (course.release / "trivial.ipynb").read_bytes()})
        specs, releases, hidden = load_assignment(course)

        def once(run_task) -> float:
            start = time.perf_counter()
            record, task = prepare(course, "s01", specs, releases, course.reference, limits)
            record = finish(course, record, TaskResult.from_json(run_task(task.to_json())), specs, releases, hidden)
            if record.score != 1:
                raise KitError(f"the trivial notebook scored {record.score}, not 1: {record.to_json()}")
            return time.perf_counter() - start

        start = time.perf_counter()
        with dask_client(1, None) as client:
            client.register_plugin(on_worker.GradingSlots(), name=on_worker.GradingSlots.name)
            started = time.perf_counter() - start
            on_worker.HOST = on_worker.Host(1)  # this process grades too, without Dask
            try:
                direct, through = [], []
                for _ in range(reps):  # alternated, so that both see the same machine
                    direct.append(once(on_worker.grade_student))
                    through.append(once(lambda t: client.submit(on_worker.grade_student, t, pure=False).result()))
            finally:
                on_worker.HOST.close()
                on_worker.HOST = None
    out = {
        "without_dask_s": statistics.median(direct),
        "through_dask_s": statistics.median(through),
        "cluster_start_s": started,
        "runs": reps,
    }
    out["overhead_per_task_s"] = out["through_dask_s"] - out["without_dask_s"]
    print(
        f"  a trivial notebook: {out['without_dask_s']:.2f} s without Dask, {out['through_dask_s']:.2f} s through "
        f"Dask (local cluster start-up {started:.1f} s, once per run)",
        flush=True,
    )
    return out


def run(
    course: Course,
    out: Path,
    n: int = 8,
    reps: int = 3,
    quick: bool = False,
    report_students: int = 1000,
    report_only: bool = False,
) -> dict:
    from .bench_report import time_report

    if report_only:  # `collabkit report` on a written class of `report_students`: no grading, no reference needed
        result = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": quick, "machine": machine()}
        print(
            f"collabkit bench (report only) on {result['machine']['cores']} cores, load "
            f"{result['machine']['loadavg_at_start']}",
            flush=True,
        )
        result["report"] = time_report(course, n=50 if quick else report_students)
        _merge(out, result, "report")
        return result
    if not course.reference.is_file():
        raise KitError(f"{course.reference} is missing: run `collabkit reference` first")
    names = course.notebooks()
    if quick:  # CI's check that the benchmark still runs: the fastest notebook, two copies, once
        names, n, reps = names[:1], 2, 1
    result = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": quick, "machine": machine()}
    print(f"collabkit bench on {result['machine']['cores']} cores, load {result['machine']['loadavg_at_start']}")
    print("solution notebooks:", flush=True)
    result["notebooks"] = time_notebooks(course, names, reps)
    result["notebooks_total_s"] = sum(v["wall_s"] for v in result["notebooks"].values())
    reference = json.loads(course.reference.read_text())
    result["models"] = {}
    for label, (nb, gid, key) in MODEL_CELLS.items():
        if nb in result["notebooks"] and gid in result["notebooks"][nb]["cells"]:
            result["models"][label] = {"fit_s": result["notebooks"][nb]["cells"][gid], "valid_mse": reference.get(key)}
    if not quick:  # two lecture trainings per repetition: too slow for the suite's quick check
        print("data path (fastai's stock loaders against the kit's):", flush=True)
        result["data_path"] = time_data_path(reps)
    print("grading:", flush=True)
    result["grading"] = time_grading(course, names, n, reps, workers=[1, 2])
    print("Dask's overhead:", flush=True)
    result["dask_overhead"] = time_dask_overhead(course, max(reps, 3))
    print("collabkit report:", flush=True)
    result["report"] = time_report(course, n=50 if quick else report_students)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return result


def _merge(out: Path, result: dict, key: str) -> None:
    """Write one part's figures into results.json, keeping the other parts' figures there."""
    old = json.loads(out.read_text()) if out.is_file() else {}
    old[key] = dict(result[key], when=result["when"], machine=result["machine"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(old, indent=2) + "\n")


def cell_split(notebooks: dict, at_least: float = 0.5) -> list[str]:
    """Where each notebook's time goes: the kernel's start and the gaps between cells (wall less its cells), the setup cell
    (imports), each cell of at least `at_least` s, and the other cells together."""
    lines = [
        "| solution notebook | wall | kernel start, between cells | setup cell | cells of 0.5 s or more | other cells |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for name, v in notebooks.items():
        cells = v.get("cells", {})
        big = {k: t for k, t in cells.items() if k != "setup" and t >= at_least}
        rest = sum(t for k, t in cells.items() if k != "setup" and k not in big)
        named = ", ".join(f"{k} {t:.1f} s" for k, t in sorted(big.items(), key=lambda x: -x[1])) or "none"
        start = v["wall_s"] - sum(cells.values())
        lines.append(
            f"| {name} | {v['wall_s']:.1f} s | {start:.1f} s | {cells.get('setup', 0):.1f} s | {named} | {rest:.1f} s |"
        )
    return lines


def table(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"Measured {r['when']} on {m['cores']} cores ({m['processor']}), load average at start "
        f"{m['loadavg_at_start']}, torch {m['torch']}{' (quick mode)' if r['quick'] else ''}.",
        "",
        "| solution notebook | wall (median) | kernel peak RSS |",
        "| --- | ---: | ---: |",
    ]
    for name, v in r["notebooks"].items():
        lines.append(f"| {name} | {v['wall_s']:.1f} s | {v['peak_rss_mb']:.0f} MB |")
    lines += [
        f"| **total** | **{r['notebooks_total_s']:.1f} s** | |",
        "",
        "| model (training cell) | fit time | validation MSE |",
        "| --- | ---: | ---: |",
    ]
    for label, v in r["models"].items():
        mse = f"{v['valid_mse']:.4f}" if v["valid_mse"] is not None else "n/a"
        lines.append(f"| {label} | {v['fit_s']:.1f} s | {mse} |")
    lines += ["", *cell_split(r["notebooks"])]
    if "data_path" in r:
        d = r["data_path"]
        lines += [
            "",
            "| data path (same batches) | fastai's stock loaders | the kit's (fastdl) | speed-up |",
            "| --- | ---: | ---: | ---: |",
        ]
        for key, label in (
            ("loader_pass_s", "one pass of the bs-64 train batches, no model"),
            ("lecture_epoch_s", "lecture recipe (bs 64), one epoch"),
            ("lecture_epoch_cpu_s", "the same, CPU time"),
            ("train_dot_s", "ck.train_dot('fast'), whole"),
        ):
            a, b = d["stock"][key], d["kit"][key]
            lines.append(f"| {label} | {a:.2f} s | {b:.2f} s | {a / b:.1f}x |")
        mses = (d["stock"]["lecture_mse"], d["kit"]["lecture_mse"])
        lines.append(f"| lecture recipe validation MSE | {mses[0]:.4f} | {mses[1]:.4f} | |")
    g = r["grading"]
    lines += [
        "",
        f"| grading {g['n']} copies of the solution | wall | submissions/min | vs nbgrader | CPU s per student "
        "| peak RSS, one process | peak PSS, one worker | peak PSS, all |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode in [k for k in g if k != "n" and not k.startswith("one_submission")]:
        v = g[mode]
        ratio = f"{v['speedup_vs_nbgrader']:.2f}x" if "speedup_vs_nbgrader" in v else "1.00x (baseline)"
        cpu = f"{v['cpu_s_per_student']:.0f} s" if "cpu_s_per_student" in v else "n/a"
        lines.append(
            f"| {mode} | {v['wall_s']:.1f} s | {v['per_minute']:.2f} | {ratio} | {cpu} | {v['peak_rss_mb']:.0f} MB "
            f"| {v.get('peak_worker_pss_mb', 0):.0f} MB | {v.get('peak_pss_total_mb', 0):.0f} MB |"
        )
    for kernels in ("warm", "cold"):
        v = g.get(f"one_submission_{kernels}")
        if v:
            lines.append(
                f"| one submission, {kernels} kernels, start to grades written | {v['wall_s']:.1f} s | | | "
                f"{v['cpu_s']:.0f} s | {v['peak_rss_mb']:.0f} MB | {v['peak_worker_pss_mb']:.0f} MB | |"
            )
    rep = r.get("report")
    if rep:
        lines += [
            "",
            f"collabkit report on {rep['students']} graded students ({rep['answer_cells']} answer cells, "
            f"{rep['workers']} workers): {rep['wall_s']:.1f} s, {rep['cpu_s']:.1f} s of CPU; {rep['candidate_pairs']} "
            f"candidate pairs compared "
            f"of {rep['all_pairs']}; planted copies found {rep['planted_found']} of {rep['planted_pairs']}, "
            f"other pairs listed {rep['other_pairs_listed']}.",
        ]
    d = r.get("dask_overhead")
    if d:
        lines += [
            "",
            f"Dask's cost: a trivial notebook graded in {d['without_dask_s']:.2f} s without Dask and "
            f"{d['through_dask_s']:.2f} s through it (median of {d['runs']}; {d['overhead_per_task_s']:+.2f} s per task); "
            f"the local cluster starts once per run in {d['cluster_start_s']:.1f} s.",
        ]
    return "\n".join(lines)
