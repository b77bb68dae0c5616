"""Reference: execute the instructor's solutions into solutions/ and record what hidden tests compare against.

Each source notebook (solutions and hidden tests included) runs in a fresh kernel, in order.
Right after the cells named in RECORD, the kit evaluates a few expressions in that same
kernel and writes them to solutions/reference.json, so that a hidden test later in the run
already finds, say, the tuned model's MSE. Every reference number is therefore the
solution's own measurement, made by the same code (`ck.valid_mse`) that grades students.
Nothing here contains an answer: the expressions only call the solution's names.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path

from .course import Course, tool_env
from .errors import KitError

log = logging.getLogger("collabkit.reference")

# notebook -> grade id of a cell -> {reference key: expression evaluated after that cell}
RECORD: dict[str, dict[str, dict[str, str]]] = {
    "02_dot_product.ipynb": {
        "learn": {
            # the recorder's losses first: measuring a model (valid_mse) starts a fresh record
            "lecture_final_losses": "[float(v) for v in learn.recorder.values[-1]]",
            "lecture_mse": "ck.valid_mse(learn)",
            "lr_find_valley": "float(suggestion.valley)",
        },
        "wd_results": {"wd_results": "{str(k): float(v) for k, v in sorted(wd_results.items())}"},
        "tuned_learn": {"tuned_mse": "ck.valid_mse(tuned_learn)"},
        "n_factors_experiment": {"nf_results": "{str(k): float(v) for k, v in sorted(nf_results.items())}"},
    },
    "03_interpretation.ipynb": {
        "kit_model": {"fast_mse": "ck.valid_mse(learn)"},
        "lowest_bias_titles": {"lowest_bias_titles": "lowest_bias_titles(learn, n=5)"},
        "highest_bias_titles": {
            "highest_bias_titles": "highest_bias_titles(learn, n=5)",
            # what 03's prose says about the bias table and scatter (collabkit/prose_facts.py)
            "bias_facts": "__import__('collabkit.prose_facts', fromlist=['_']).bias_facts(learn, ratings)",
        },
        "most_similar": {"most_similar_star_wars": "most_similar(learn, 'Star Wars (1977)', n=5)"},
    },
    "04_neural_cf.ipynb": {
        "kit_models": {"dot_final_losses": "[float(v) for v in learn_dot.recorder.values[-1]]"},
        "learn_nn": {"neural_mse": "ck.valid_mse(learn_nn)"},
    },
}
MARK = "COLLABKIT-REFERENCE "


def _record(client, index: int, cell, nb_name: str, grade_id: str, values: dict, solutions_dir: Path) -> None:
    """After `cell` (at `index`) ran, evaluate RECORD's expressions for it in the same kernel."""
    import nbformat

    exprs = RECORD.get(nb_name, {}).get(grade_id)
    if not exprs:
        return
    body = ", ".join(f"{json.dumps(k)}: {v}" for k, v in exprs.items())
    code = (
        f"import json as _j, pathlib as _p\nSOLUTIONS = _p.Path({str(solutions_dir)!r})\n"
        f"print({MARK!r} + _j.dumps({{{body}}}))"
    )
    scratch = nbformat.v4.new_code_cell(code)
    client.execute_cell(scratch, index)
    client.nb.cells[index] = cell  # nbclient stores the cell it ran at that index: put the notebook's back
    for out in scratch.outputs:
        if out.get("name") == "stdout" and MARK in out.get("text", ""):
            line = next(line for line in out["text"].splitlines() if line.startswith(MARK))
            values.update(json.loads(line[len(MARK) :]))
            return
    raise KitError(f"{nb_name}: could not record {list(exprs)} after cell {grade_id}: {scratch.outputs}")


def kernel_env(ref_file: Path) -> dict:
    """The solutions' kernel: one numeric thread, and the reference file its hidden tests read."""
    return tool_env(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", COLLABKIT_REFERENCE=str(ref_file))


def execute(path: Path, out_dir: Path, ref_file: Path, values: dict, cell_times: dict | None = None) -> float:
    """Execute one source notebook into out_dir, recording reference values as it goes.

    Returns the wall time; `cell_times`, if given, receives each graded cell's seconds."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    workdir = tempfile.TemporaryDirectory(prefix="collabkit-reference-")  # lr_find leaves models/ behind
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", record_timing=False, resources={"metadata": {"path": workdir.name}}
    )
    start = time.perf_counter()
    with workdir, client.setup_kernel(env=kernel_env(ref_file)):
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            began = time.perf_counter()
            client.execute_cell(cell, index)
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if cell_times is not None and grade_id:
                cell_times[grade_id] = time.perf_counter() - began
            errors = [o for o in cell.outputs if o.output_type == "error"]
            if errors:
                raise KitError(f"{path.name}, cell {index}: {errors[0].ename}: {errors[0].evalue}")
            before = dict(values)
            _record(client, index, cell, path.name, grade_id, values, ref_file.parent)
            if values != before:
                ref_file.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    seconds = time.perf_counter() - start
    nbformat.write(nb, out_dir / path.name)
    return seconds


def build_reference(course: Course) -> dict:
    """Execute every solution notebook into solutions/<assignment>/ and write solutions/reference.json."""
    out_dir = course.solutions
    out_dir.mkdir(parents=True, exist_ok=True)
    final = course.reference
    # The run fills a scratch file (the solutions' hidden tests read it as they go) and renames
    # it into place at the end, so a grading run meanwhile never sees a half-written reference.
    ref_file = final.with_name(".reference.json.partial")
    values: dict = {}
    ref_file.write_text("{}\n")
    try:
        for name in course.notebooks():
            seconds = execute(course.source / name, out_dir, ref_file, values)
            log.info("collabkit reference: %s executed in %.1f s", name, seconds)
        os.replace(ref_file, final)
    finally:
        ref_file.unlink(missing_ok=True)
    return values
