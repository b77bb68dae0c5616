"""Every film a rubric or a model answer names is one the student's own notebook shows.

Rubrics (the mark schemes graders read) and reference answers are written against the executed
solution. When a recipe or a plot changes, a key that still names the old run's films sends graders
looking for films the student never saw. Film names in those cells are written in italics
(`*Casablanca*`); each italic span that is a MovieLens title must appear, as its full MovieLens
title, in the outputs of the same executed notebook under solutions/. Any other italic span must
be one of the few known non-film phrases below, so a misspelt film cannot slip through as "not a film".
"""

from __future__ import annotations

import re

import nbformat
import pytest
from harness import ASSIGNMENT, REPO
from test_release import NOTEBOOKS

ITALIC = re.compile(r"(?<![*\w])\*(?!\*)([^*\n]+?)\*(?!\*)")
NOT_FILMS = {
    "Reference answer.",
    "Reference reading (the instructor's; the sign of each axis may be flipped in your plot).",
    "wellbeing",
    "outrage or fear",
}


def _aliases() -> dict[str, set[str]]:
    """How a key may name a MovieLens title -> the full titles it names."""
    import collabkit.nb as ck

    out: dict[str, set[str]] = {}
    for title in ck.movies()["title"]:
        base = re.sub(r"(\s*\([^)]*\))+\s*$", "", title).strip()  # drop "(1995)", "(ID4) (1996)"
        names = {base}
        m = re.match(r"^(.*), (The|A|An|Les|Le|La|Das|Il)$", base)
        if m:
            names |= {f"{m.group(2)} {m.group(1)}", m.group(1)}
        names |= {n.split(":")[0].strip() for n in list(names) if ":" in n}
        for name in names:
            out.setdefault(name, set()).add(title)
    return out


def key_cells(nb) -> list:
    """Mark schemes and hand-graded reference answers of a source notebook."""
    cells = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "markdown":
            continue
        if "=== BEGIN MARK SCHEME ===" in cell.source or (meta.get("solution") and meta.get("grade")):
            cells.append(cell)
    return cells


def output_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            for key in ("text/plain", "text/html"):
                value = out.get("data", {}).get(key)
                if isinstance(value, str):
                    parts.append(value)
    return "\n".join(parts).replace("&amp;", "&").replace("&#x27;", "'").replace("&#39;", "'")


@pytest.fixture(scope="module")
def aliases():
    return _aliases()


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_film_a_key_names_is_in_the_executed_solution(name, aliases):
    source = nbformat.read(REPO / "source" / ASSIGNMENT / name, as_version=4)
    shown = output_text(nbformat.read(REPO / "solutions" / ASSIGNMENT / name, as_version=4))
    missing, unknown = [], []
    for cell in key_cells(source):
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        for span in ITALIC.findall(cell.source):
            span = span.strip()
            titles = aliases.get(span)
            if titles is None:
                if span not in NOT_FILMS:
                    unknown.append(f"{gid}: *{span}*")
                continue
            if not any(t in shown for t in titles):
                missing.append(f"{gid}: *{span}* ({' or '.join(sorted(titles))})")
    assert not unknown, (
        "italic phrases in keys that are neither a MovieLens title nor a known non-film phrase "
        f"(a misspelt film?): {unknown}"
    )
    assert not missing, f"{name}: keys name films the executed solution does not show: {missing}"


def test_the_check_finds_the_films_of_03s_key(aliases):
    """The check is not vacuous: 03's key names films, and a film the outputs lack is caught."""
    source = nbformat.read(REPO / "source" / ASSIGNMENT / "03_interpretation.ipynb", as_version=4)
    spans = [s for c in key_cells(source) for s in ITALIC.findall(c.source) if s in aliases]
    assert len(spans) >= 10, spans
    assert "Casablanca" in spans and "The Godfather" in aliases
    shown = output_text(nbformat.read(REPO / "solutions" / ASSIGNMENT / "03_interpretation.ipynb", as_version=4))
    assert not any(t in shown for t in aliases["Jaws 3-D"]), "a film the 03 outputs do not show"
