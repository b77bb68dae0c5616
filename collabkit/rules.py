"""The rules a submitted notebook is held to, shared by the grader and the students' check.

Students' notebooks arrive in every state: old formats, broken JSON, cells deleted, copied,
retyped or edited, tags that skip a test, another kernel. `repair` reads the bytes of a
submitted notebook and `sanitize` returns a notebook that nbgrader can grade fairly, plus one
`Repair` per thing it had to change, so that a damaged submission is graded on its honest parts
and its record says what was done.

Two processes run these same rules, so they cannot disagree:
- the grading parent (collabkit/grading/sanitize.py, batch.prepare), before anything executes,
  against what the instructor holds: the release notebook (cell order, metadata, kernelspec),
  the gradebook's source cells (`CellSpec`: every read-only cell in full, hidden tests
  included, which replace whatever the student's copy holds) and the reference values
  (solutions/reference.json), which `inline_reference` writes into the restored test cells;
- the student's `collabkit check` (collabkit/check.py, shipped in the students' wheel), against
  the release alone (`specs_from_release`): it reports the same repairs without any hidden test.

This module imports nothing but nbformat, so the students' wheel can carry it.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass

import nbformat
from nbformat.corpus.words import generate_corpus_id

SKIP_TAGS = {"skip-execution", "raises-exception", "skip", "raises_exception", "skip_execution"}
CELL_ID = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")


class Unreadable(Exception):
    """The file is not a notebook we can read (bad JSON, not a notebook at all)."""


@dataclass
class CellSpec:
    """One cell the gradebook knows (nbgrader's SourceCell plus its grade/solution/task role)."""

    grade_id: str
    cell_type: str
    source: str  # full source (hidden tests included) as recorded by generate_assignment
    locked: bool
    grade: bool = False
    solution: bool = False
    task: bool = False
    points: float | None = None


@dataclass
class Repair:
    kind: (
        str  # format, cell_id, unknown_cell, duplicate, retyped, metadata, points, tag, edited, reinserted, kernelspec
    )
    grade_id: str | None
    detail: str
    tampering: bool = False

    def __str__(self) -> str:
        where = f"{self.grade_id}: " if self.grade_id else ""
        return f"{where}{self.detail}"


def read(data: bytes) -> tuple[nbformat.NotebookNode, list[Repair]]:
    """Parse a submitted file into an nbformat 4.5 notebook, upgrading older formats."""
    repairs = []
    try:
        text = data.decode("utf-8-sig")
        raw = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise Unreadable(f"not valid JSON ({err})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("nbformat"), int):
        raise Unreadable("valid JSON, but not a Jupyter notebook (no nbformat version)")
    major, minor = raw["nbformat"], raw.get("nbformat_minor", 0)
    if major not in (3, 4):
        raise Unreadable(f"nbformat {major} is not supported (3 or 4 expected)")
    try:
        nb = nbformat.convert(nbformat.from_dict(raw), 4)
    except Exception as err:  # noqa: BLE001  nbformat's converters raise whatever the damage provokes
        raise Unreadable(f"nbformat {major}.{minor} that cannot be converted ({type(err).__name__}: {err})") from None
    if (major, minor) < (4, 5):
        repairs.append(Repair("format", None, f"upgraded from nbformat {major}.{minor} to 4.5"))
    if not isinstance(nb.get("cells"), list):
        raise Unreadable("the notebook has no list of cells")
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb, repairs


def _meta(cell) -> dict:
    md = cell.get("metadata")
    return md.get("nbgrader") if isinstance(md, dict) and isinstance(md.get("nbgrader"), dict) else {}


def _grade_id(cell) -> str | None:
    gid = _meta(cell).get("grade_id")
    return gid if isinstance(gid, str) else None


def _blank(cell_type: str, source: str = "") -> nbformat.NotebookNode:
    make = {
        "code": nbformat.v4.new_code_cell,
        "markdown": nbformat.v4.new_markdown_cell,
        "raw": nbformat.v4.new_raw_cell,
    }[cell_type]
    return make(source)


def _normalise_cell(cell) -> nbformat.NotebookNode:
    """A structurally valid v4.5 cell with the same type, source and metadata (outputs dropped)."""
    cell_type = cell.get("cell_type") if cell.get("cell_type") in ("code", "markdown", "raw") else "raw"
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(str(s) for s in source)
    new = _blank(cell_type, source if isinstance(source, str) else str(source))
    md = cell.get("metadata")
    new.metadata = nbformat.from_dict(md) if isinstance(md, dict) else nbformat.NotebookNode()
    if isinstance(cell.get("id"), str):
        new["id"] = cell["id"]
    else:
        del new["id"]  # nbformat made one up: fix_cell_ids gives it one and says so
    return new


def _retype(cell, cell_type: str) -> nbformat.NotebookNode:
    new = _blank(cell_type, cell.source)
    new.metadata = cell.metadata
    new["id"] = cell.get("id") or generate_corpus_id()
    return new


def _same_text(a: str, b: str) -> bool:
    return [line.rstrip() for line in a.strip().splitlines()] == [line.rstrip() for line in b.strip().splitlines()]


@dataclass
class Context:
    """What every pass may consult: the release students received and the gradebook's cells."""

    release: nbformat.NotebookNode
    specs: dict[str, CellSpec]
    upgraded: bool = False  # read() upgraded the format (its cell ids are new anyway: no cell_id repair)
    reference: dict | None = None  # reference.json's values, for inline_reference (None: leave the tests alone)
    reference_dir: str | None = None  # the kernel's folder holding the files reference.json names

    @property
    def released(self) -> dict[str, nbformat.NotebookNode]:
        return {_grade_id(c): c for c in self.release.cells if _grade_id(c) in self.specs}


# Each pass applies one rule to the working notebook in place and returns its repairs, the way
# nbgrader chains its preprocessors (ClearOutput, DeduplicateIds, OverwriteCells, ...).


def drop_unknown_metadata(nb, ctx: Context) -> list[Repair]:
    """nbgrader metadata on a cell the gradebook does not know is removed (tampering if it claims points)."""
    out = []
    for cell in nb.cells:
        gid = _grade_id(cell)
        if "nbgrader" in cell.metadata and gid not in ctx.specs:
            claims_points = bool(_meta(cell).get("grade"))
            del cell.metadata["nbgrader"]
            out.append(
                Repair(
                    "unknown_cell",
                    gid,
                    "nbgrader metadata on a cell the gradebook does not know was removed",
                    tampering=claims_points,
                )
            )
    return out


def drop_duplicates(nb, ctx: Context) -> list[Repair]:
    """A known cell appears once: a read-only duplicate goes, an answer's duplicate becomes an ordinary cell."""
    out, seen, kept = [], set(), []
    for cell in nb.cells:
        gid = _grade_id(cell)
        if gid is not None and gid in seen:
            if ctx.specs[gid].locked:
                out.append(Repair("duplicate", gid, "a duplicate of this read-only cell was removed"))
                continue
            del cell.metadata["nbgrader"]
            out.append(
                Repair(
                    "duplicate",
                    gid,
                    "a duplicate of this answer cell is kept as an ordinary cell (only the first is graded)",
                )
            )
        elif gid is not None:
            seen.add(gid)
        kept.append(cell)
    nb.cells = kept
    return out


def restore_cell_types(nb, ctx: Context) -> list[Repair]:
    """A known cell turned into another type (code, markdown, raw) is turned back."""
    out = []
    for i, cell in enumerate(nb.cells):
        gid = _grade_id(cell)
        if gid is not None and cell.cell_type != ctx.specs[gid].cell_type:
            out.append(Repair("retyped", gid, f"turned from {cell.cell_type} back into {ctx.specs[gid].cell_type}"))
            nb.cells[i] = _retype(cell, ctx.specs[gid].cell_type)
    return out


def restore_metadata(nb, ctx: Context) -> list[Repair]:
    """A known cell's nbgrader metadata is the release's; changed points or flags are tampering."""
    out, released = [], ctx.released
    for cell in nb.cells:
        gid = _grade_id(cell)
        if gid is None or gid not in released:
            continue
        spec, want, got = ctx.specs[gid], copy.deepcopy(released[gid].metadata.nbgrader), cell.metadata.nbgrader
        if got == want:
            continue
        if spec.points is not None and _points(got) != float(spec.points):
            out.append(
                Repair(
                    "points",
                    gid,
                    f"points changed from {spec.points:g} to {got.get('points')}; restored",
                    tampering=True,
                )
            )
        changed = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k) and k != "points")
        if changed:
            flags = {"grade", "solution", "locked", "task"} & set(changed)
            out.append(
                Repair("metadata", gid, f"nbgrader metadata ({', '.join(changed)}) restored", tampering=bool(flags))
            )
        cell.metadata["nbgrader"] = want
    return out


def remove_skip_tags(nb, ctx: Context) -> list[Repair]:
    """Tags that skip a known cell or tolerate its errors are removed (tampering); other tags stay."""
    out = []
    for cell in nb.cells:
        gid, tags = _grade_id(cell), cell.metadata.get("tags")
        if gid is None or tags is None:
            continue
        bad = [t for t in tags if isinstance(t, str) and t.lower() in SKIP_TAGS] if isinstance(tags, list) else tags
        if bad:
            out.append(
                Repair("tag", gid, f"tags {bad} that skip execution or tolerate errors were removed", tampering=True)
            )
        good = [t for t in tags if isinstance(t, str) and t.lower() not in SKIP_TAGS] if isinstance(tags, list) else []
        if good:
            cell.metadata["tags"] = good
        else:
            del cell.metadata["tags"]
    return out


def restore_editability(nb, ctx: Context) -> list[Repair]:
    """A known cell's `editable`/`deletable` flags are the release's (not a repair worth a note)."""
    released = ctx.released
    for cell in nb.cells:
        rel = released.get(_grade_id(cell))
        if rel is None:
            continue
        for key in ("editable", "deletable"):
            if key in rel.metadata:
                cell.metadata[key] = rel.metadata[key]
            else:
                cell.metadata.pop(key, None)
    return []


def restore_read_only_source(nb, ctx: Context) -> list[Repair]:
    """A read-only cell's source is the gradebook's (hidden tests included); an edit is tampering."""
    out, released = [], ctx.released
    for cell in nb.cells:
        gid = _grade_id(cell)
        if gid is None or not ctx.specs[gid].locked:
            continue
        given = released[gid].source if gid in released else ctx.specs[gid].source
        if not _same_text(cell.source, given):
            out.append(
                Repair("edited", gid, "this read-only cell was edited; the original was restored", tampering=True)
            )
        cell.source = ctx.specs[gid].source
    return out


def reinsert_missing(nb, ctx: Context) -> list[Repair]:
    """A known cell that is missing comes back, after the known cell that precedes it in the release."""
    out, released = [], ctx.released
    order = [_grade_id(c) for c in ctx.release.cells if _grade_id(c) in ctx.specs]
    present = {_grade_id(c) for c in nb.cells}
    for k, gid in enumerate(order):
        if gid in present:
            continue
        new = _normalise_cell(copy.deepcopy(released[gid]))
        if ctx.specs[gid].locked:
            new.source = ctx.specs[gid].source
        new["id"] = generate_corpus_id()
        at = 0
        for prev in reversed(order[:k]):
            idx = next((j for j, c in enumerate(nb.cells) if _grade_id(c) == prev), None)
            if idx is not None:
                at = idx + 1
                break
        nb.cells.insert(at, new)
        present.add(gid)
        out.append(
            Repair(
                "reinserted",
                gid,
                "this cell was missing and was put back" + (" (unanswered)" if ctx.specs[gid].solution else ""),
            )
        )
    return out


REFERENCE_KEY = re.compile(r"""ck\.reference\(\)\[\s*(["'])(.*?)\1\s*\]""")


def inline_reference(nb, ctx: Context) -> list[Repair]:
    """In graded test cells, `ck.reference()["key"]` becomes the value itself (each test gets only
    the values it names), `ck.reference()` the whole dict, and `ck.reference_path()` the path
    whose folder holds the files reference.json names. Not a repair: nothing is recorded."""
    if ctx.reference is None:
        return []
    values = ctx.reference
    for cell in nb.cells:
        spec = ctx.specs.get(_grade_id(cell))
        if spec is None or cell.cell_type != "code" or not spec.grade or spec.solution:
            continue
        src = REFERENCE_KEY.sub(
            lambda m: f"({values[m.group(2)]!r})" if m.group(2) in values else f"{{}}[{m.group(2)!r}]", cell.source
        )
        src = src.replace("ck.reference()", f"({values!r})")
        if ctx.reference_dir is not None:
            src = src.replace(
                "ck.reference_path()", f"__import__('pathlib').Path({ctx.reference_dir!r}, 'reference.json')"
            )
        cell.source = src
    return []


def fix_cell_ids(nb, ctx: Context) -> list[Repair]:
    """Cell ids are present, valid and unique (nbformat 4.5)."""
    ids: set[str] = set()
    renamed = 0
    for cell in nb.cells:
        cid = cell.get("id")
        if not isinstance(cid, str) or not CELL_ID.match(cid) or cid in ids:
            cid = generate_corpus_id()
            while cid in ids:
                cid = generate_corpus_id()
            cell["id"] = cid
            renamed += 1
        ids.add(cid)
    if renamed and not ctx.upgraded:
        return [Repair("cell_id", None, f"{renamed} missing, invalid or duplicate cell ids replaced")]
    return []


def restore_kernelspec(nb, ctx: Context) -> list[Repair]:
    """The kernel and language are the release's."""
    out = []
    for key in ("kernelspec", "language_info"):
        if key in ctx.release.metadata and nb.metadata.get(key) != ctx.release.metadata[key]:
            if key == "kernelspec":
                out.append(
                    Repair(
                        "kernelspec",
                        None,
                        f"kernelspec {_kernel_name(nb.metadata.get(key))!r} replaced by "
                        f"{ctx.release.metadata[key].get('name')!r}",
                    )
                )
            nb.metadata[key] = copy.deepcopy(ctx.release.metadata[key])
    return out


def drop_invalid_metadata(nb, ctx: Context) -> list[Repair]:
    """Standard metadata of the wrong type (a cell's `collapsed: "yes"`, the notebook's `authors: "me"`),
    which nbformat would refuse, is removed."""
    from nbformat.validator import iter_validate

    dropped: list[str] = []
    for _ in range(1000):  # one key per round: removing one can change what the validator reports next
        bad = next(
            (
                path[: path.index("metadata") + 2]
                for err in iter_validate(nb)
                for path in [list(err.absolute_path)]
                if "metadata" in path and len(path) > path.index("metadata") + 1
            ),
            None,
        )
        if bad is None:
            break
        parent = nb
        for key in bad[:-1]:
            parent = parent[key]
        del parent[bad[-1]]
        dropped.append(".".join(map(str, bad)))
    if dropped:
        return [Repair("metadata", None, f"metadata nbformat cannot read was removed ({', '.join(dropped)})")]
    return []


def clear_outputs(nb, ctx: Context) -> list[Repair]:
    """Outputs, execution counts and timings start empty (whatever the student's copy showed)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
    return []


PASSES = [
    drop_unknown_metadata,
    drop_duplicates,
    restore_cell_types,
    restore_metadata,
    remove_skip_tags,
    restore_editability,
    restore_read_only_source,
    reinsert_missing,
    inline_reference,
    fix_cell_ids,
    restore_kernelspec,
    clear_outputs,
    drop_invalid_metadata,
]


def sanitize(
    nb,
    release,
    specs: dict[str, CellSpec],
    upgraded: bool = False,
    reference: dict | None = None,
    reference_dir: str | None = None,
) -> tuple[nbformat.NotebookNode, list[Repair]]:
    """Return a gradable copy of `nb` and the repairs made, pass by pass (PASSES).

    `release` is the notebook students received; `specs` the gradebook's cells by grade id;
    `upgraded` says read() already upgraded an old format; `reference` (reference.json's values)
    and `reference_dir` (the kernel's folder with the files it names) go into the test cells.
    """
    # Built without validating: the passes repair what nbformat would refuse or silently renumber.
    work = nbformat.from_dict(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "cells": [],
            "metadata": dict(nb.metadata) if isinstance(nb.get("metadata"), dict) else {},
        }
    )
    work.cells = [_normalise_cell(c) for c in nb.cells if isinstance(c, dict)]
    ctx = Context(release, specs, upgraded, reference, reference_dir)
    repairs: list[Repair] = []
    for step in PASSES:
        repairs += step(work, ctx)
    nbformat.validate(work)
    return work, repairs


def _points(meta: dict) -> float | None:
    try:
        return float(meta.get("points"))
    except (TypeError, ValueError):
        return None


def _kernel_name(spec) -> str | None:
    return spec.get("name") if isinstance(spec, dict) else None


def specs_from_release(release) -> dict[str, CellSpec]:
    """The CellSpecs the release itself tells (no gradebook): roles and points from each cell's
    nbgrader metadata, read-only sources as released (visible tests only). Locked as nbgrader
    decides it (utils.is_locked): an answer never, a test always, else the cell's flag."""
    specs = {}
    for cell in release.cells:
        meta, gid = _meta(cell), _grade_id(cell)
        if gid is None:
            continue
        grade, solution = bool(meta.get("grade")), bool(meta.get("solution"))
        task = bool(meta.get("task"))
        specs[gid] = CellSpec(
            gid,
            cell.cell_type,
            cell.source,
            locked=False if solution else True if grade else bool(meta.get("locked")),
            grade=grade,
            solution=solution,
            task=task,
            points=_points(meta) if grade or task else None,
        )
    return specs


def repair(
    data: bytes,
    release,
    specs: dict[str, CellSpec],
    reference: dict | None = None,
    reference_dir: str | None = None,
) -> tuple[nbformat.NotebookNode, list[Repair]]:
    """A submitted file's bytes to a gradable notebook and every repair made (read, then sanitize).
    Raises Unreadable for a file that is no notebook; any other exception means a notebook
    damaged in a way no rule foresaw (the grader marks it unreadable too)."""
    nb, repairs = read(data)
    nb, more = sanitize(
        nb,
        release,
        specs,
        upgraded=any(r.kind == "format" for r in repairs),
        reference=reference,
        reference_dir=reference_dir,
    )
    return nb, repairs + more
