"""Runs in the grading parent, before anything executes: repair a submitted notebook against the release.

The rules themselves live in collabkit/rules.py, which the students' wheel also carries, so that
the students' `collabkit check` and this grader apply one set of rules. This module re-exports
them for the grading code and adds what only the grader may know: the hidden-test lines.
"""

from __future__ import annotations

from ..rules import (  # noqa: F401  re-exported: the grader's names for the shared rules
    CELL_ID,
    PASSES,
    REFERENCE_KEY,
    SKIP_TAGS,
    CellSpec,
    Context,
    Repair,
    Unreadable,
    clear_outputs,
    drop_duplicates,
    drop_invalid_metadata,
    drop_unknown_metadata,
    fix_cell_ids,
    inline_reference,
    read,
    reinsert_missing,
    remove_skip_tags,
    repair,
    restore_cell_types,
    restore_editability,
    restore_kernelspec,
    restore_metadata,
    restore_read_only_source,
    sanitize,
    specs_from_release,
)


def hidden_lines(specs: dict[str, CellSpec], release) -> list[str]:
    """Lines of hidden-test source (what the release does not show), for feedback redaction and checks."""
    shown = set()
    for cell in release.cells:
        shown.update(line.strip() for line in cell.source.splitlines())
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
