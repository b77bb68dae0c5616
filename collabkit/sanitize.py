"""Repair a submitted notebook against what students were given, before anything runs.

Students' notebooks arrive in every state: old formats, broken JSON, cells deleted, copied,
retyped or edited, tags that skip a test, another kernel. `sanitize` returns a notebook
that nbgrader can grade fairly, plus one `Repair` per thing it had to change, so that a
damaged submission is graded on its honest parts and its record says what was done.

It works against two things the instructor holds:
- the release notebook (what students received): cell order, metadata, kernelspec;
- the gradebook's source cells (`CellSpec`): the full source of every read-only cell,
  hidden tests included, which replaces whatever the student's copy holds.
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
    source: str          # full source (hidden tests included) as recorded by generate_assignment
    locked: bool
    grade: bool = False
    solution: bool = False
    task: bool = False
    points: float | None = None


@dataclass
class Repair:
    kind: str            # format, cell_id, unknown_cell, duplicate, retyped, metadata, points, tag, edited, reinserted, kernelspec
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
    except Exception as err:  # nbformat's converters raise whatever the damage provokes
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
    make = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
            "raw": nbformat.v4.new_raw_cell}[cell_type]
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
    return new


def _retype(cell, cell_type: str) -> nbformat.NotebookNode:
    new = _blank(cell_type, cell.source)
    new.metadata = cell.metadata
    new["id"] = cell.get("id") or generate_corpus_id()
    return new


def _same_text(a: str, b: str) -> bool:
    return [l.rstrip() for l in a.strip().splitlines()] == [l.rstrip() for l in b.strip().splitlines()]


def sanitize(nb, release, specs: dict[str, CellSpec]) -> tuple[nbformat.NotebookNode, list[Repair]]:
    """Return a gradable copy of `nb` and the repairs made.

    `release` is the notebook students received; `specs` the gradebook's cells by grade id.
    """
    repairs: list[Repair] = []
    fix = lambda kind, gid, detail, tampering=False: repairs.append(Repair(kind, gid, detail, tampering))

    cells = [_normalise_cell(c) for c in nb.cells if isinstance(c, dict)]
    released = {_grade_id(c): c for c in release.cells if _grade_id(c) in specs}

    # 1. Cells the gradebook does not know lose their nbgrader metadata; known ones appear once.
    seen: set[str] = set()
    kept = []
    for cell in cells:
        gid = _grade_id(cell)
        if "nbgrader" in cell.metadata and gid not in specs:
            claims_points = bool(_meta(cell).get("grade"))
            del cell.metadata["nbgrader"]
            fix("unknown_cell", gid, "nbgrader metadata on a cell the gradebook does not know was removed",
                tampering=claims_points)
        elif gid in seen:
            spec = specs[gid]
            if spec.locked:
                fix("duplicate", gid, "a duplicate of this read-only cell was removed")
                continue
            del cell.metadata["nbgrader"]
            fix("duplicate", gid, "a duplicate of this answer cell is kept as an ordinary cell (only the first is graded)")
        elif gid is not None:
            seen.add(gid)
        kept.append(cell)
    cells = kept

    # 2. Every known cell gets back its type, metadata and, when read-only, its source.
    for i, cell in enumerate(cells):
        gid = _grade_id(cell)
        if gid is None:
            continue
        spec, rel = specs[gid], released.get(gid)
        if cell.cell_type != spec.cell_type:
            fix("retyped", gid, f"turned from {cell.cell_type} back into {spec.cell_type}")
            cell = cells[i] = _retype(cell, spec.cell_type)
        want = copy.deepcopy(rel.metadata.nbgrader) if rel is not None else None
        got = cell.metadata.nbgrader
        if want is not None and got != want:
            if spec.points is not None and _points(got) != float(spec.points):
                fix("points", gid, f"points changed from {spec.points:g} to {got.get('points')}; restored", tampering=True)
            changed = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k) and k != "points")
            if changed:
                flags = {"grade", "solution", "locked", "task"} & set(changed)
                fix("metadata", gid, f"nbgrader metadata ({', '.join(changed)}) restored", tampering=bool(flags))
            cell.metadata["nbgrader"] = want
        tags = cell.metadata.get("tags")
        if tags is not None:
            bad = [t for t in tags if isinstance(t, str) and t.lower() in SKIP_TAGS] if isinstance(tags, list) else tags
            if bad:
                fix("tag", gid, f"tags {bad} that skip execution or tolerate errors were removed", tampering=True)
            good = [t for t in tags if isinstance(t, str) and t.lower() not in SKIP_TAGS] if isinstance(tags, list) else []
            if good:
                cell.metadata["tags"] = good
            else:
                del cell.metadata["tags"]
        if rel is not None:
            for key in ("editable", "deletable"):
                if key in rel.metadata:
                    cell.metadata[key] = rel.metadata[key]
                else:
                    cell.metadata.pop(key, None)
        if spec.locked:
            given = rel.source if rel is not None else spec.source
            if not _same_text(cell.source, given):
                fix("edited", gid, "this read-only cell was edited; the original was restored", tampering=True)
            cell.source = spec.source

    # 3. Known cells that are missing come back, after the known cell that precedes them.
    order = [_grade_id(c) for c in release.cells if _grade_id(c) in specs]
    present = {_grade_id(c) for c in cells}
    for k, gid in enumerate(order):
        if gid in present:
            continue
        new = _normalise_cell(copy.deepcopy(released[gid]))
        if specs[gid].locked:
            new.source = specs[gid].source
        new["id"] = generate_corpus_id()
        at = 0
        for prev in reversed(order[:k]):
            idx = next((j for j, c in enumerate(cells) if _grade_id(c) == prev), None)
            if idx is not None:
                at = idx + 1
                break
        cells.insert(at, new)
        present.add(gid)
        fix("reinserted", gid, "this cell was missing and was put back" +
            (" (unanswered)" if specs[gid].solution else ""))

    # 4. Cell ids: present, valid and unique (nbformat 4.5).
    ids: set[str] = set()
    renamed = 0
    for cell in cells:
        cid = cell.get("id")
        if not isinstance(cid, str) or not CELL_ID.match(cid) or cid in ids:
            cid = generate_corpus_id()
            while cid in ids:
                cid = generate_corpus_id()
            cell["id"] = cid
            renamed += 1
        ids.add(cid)
    if renamed and not any(r.kind == "format" for r in repairs):
        fix("cell_id", None, f"{renamed} missing, invalid or duplicate cell ids replaced")

    # 5. The kernel and language are the release's; outputs start empty.
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata = nbformat.from_dict(dict(nb.metadata)) if isinstance(nb.get("metadata"), dict) else nbformat.NotebookNode()
    for key in ("kernelspec", "language_info"):
        if key in release.metadata and out.metadata.get(key) != release.metadata[key]:
            if key == "kernelspec":
                fix("kernelspec", None, f"kernelspec {_kernel_name(out.metadata.get(key))!r} replaced by "
                                        f"{release.metadata[key].get('name')!r}")
            out.metadata[key] = copy.deepcopy(release.metadata[key])
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
    nbformat.validate(out)
    return out, repairs


def _points(meta: dict) -> float | None:
    try:
        return float(meta.get("points"))
    except (TypeError, ValueError):
        return None


def _kernel_name(spec) -> str | None:
    return spec.get("name") if isinstance(spec, dict) else None


def hidden_lines(specs: dict[str, CellSpec], release) -> list[str]:
    """Lines of hidden-test source (what the release does not show), for feedback redaction and checks."""
    shown = set()
    for cell in release.cells:
        shown.update(l.strip() for l in cell.source.splitlines())
    lines = set()
    for spec in specs.values():
        if "BEGIN HIDDEN TESTS" not in spec.source:
            continue
        inside = False
        for line in spec.source.splitlines():
            if "BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "END HIDDEN TESTS" in line:
                inside = False
            elif inside and len(line.strip()) >= 12 and line.strip() not in shown:
                lines.add(line.strip())
    return sorted(lines, key=len, reverse=True)
