"""`collabkit report` on a class built from the fixture tables (report_class.py): the warnings name the planted
broken test, every planted copy is listed and no pair of independently written fixture answers is, two cells'
difficulty and discrimination match the values computed here by hand, and the page renders in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from harness import expected_losses
from report_class import BROKEN, COPIES, REGRADED, SOURCE, STEMS, build_class, write_gradebook

from collabkit.cli import main
from collabkit.course import Course
from collabkit.report import group, load
from collabkit.report_similarity import MIN_CELL, MIN_PAIR, THRESHOLD, pair_scores, words


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    course = tmp_path_factory.mktemp("report") / "course"
    planted = build_class(course)
    write_gradebook(course, planted["hand"])
    assert main(["report", "--root", str(course)]) == 0
    report = json.loads((course / "exports" / "report.json").read_text())
    return course, planted, report


def test_the_planted_broken_test_is_flagged_first_with_its_evidence(classroom):
    course, planted, report = classroom
    n = len(planted["plans"])
    first, second = report["warnings"][:2]
    assert (first["kind"], first["cell"]) == ("nobody_passed", f"02_dot_product.ipynb {BROKEN}")
    assert f"0 of {n} students reached full marks" in first["evidence"] and f"failed {n}" in first["evidence"]
    assert (second["kind"], second["cell"]) == ("one_message_for_most", f"02_dot_product.ipynb {BROKEN}")
    assert second["evidence"].startswith(f"{n} of {n} students failed with the same message")
    assert "validation MSE # is not below #" in second["evidence"]  # the numbers differ from student to student
    nobody = [w["cell"] for w in report["warnings"] if w["kind"] == "nobody_passed"]
    assert nobody == [f"02_dot_product.ipynb {BROKEN}"], "only the planted test is one that nobody passed"
    regrade = [w for w in report["warnings"] if w["kind"] == "changed_by_last_regrade"]
    assert [w["cell"] for w in regrade] == [f"02_dot_product.ipynb {REGRADED}"], "hand grades are not regrades"
    page = (course / "exports" / "report.html").read_text()
    assert page.index("Warnings that point at the test") < page.index("Item analysis")
    assert page.index(BROKEN) < page.index("Item analysis")


def test_failure_messages_differing_only_in_numbers_count_as_one(classroom):
    _, planted, report = classroom
    broken = next(c for c in report["cells"] if c["grade_id"] == BROKEN)
    assert broken["messages"] == [
        dict(message="AssertionError: validation MSE # is not below #", example=broken["messages"][0]["example"],
             students=len(planted["plans"]))
    ]  # fmt: skip
    assert group("expected 0.875, got -3e-05 (epoch 2)") == "expected #, got # (epoch #)"


def _by_hand(course: Path, planted: dict) -> tuple[dict, dict]:
    """Every student's score on every graded cell, from the fixture tables, the release's points and the hand grades."""
    points = {}
    for stem in STEMS:
        nb = json.loads((course / "release" / "collab_filtering" / f"{stem}.ipynb").read_text())
        for cell in nb["cells"]:
            meta = cell["metadata"].get("nbgrader", {})
            if meta.get("grade"):
                points[(f"{stem}.ipynb", meta["grade_id"])] = float(meta["points"])
    points[("02_dot_product.ipynb", BROKEN)] = 1.0
    scores = {}
    for student, plan in planted["plans"].items():
        for (name, gid), p in points.items():
            fixture = plan[name[: -len(".ipynb")]][0]
            if (student, name, gid) in planted["hand"]:
                score = planted["hand"][(student, name, gid)][0]
            elif gid == BROKEN:
                score = 0.0
            else:
                score = expected_losses(name[: -len(".ipynb")]).get(fixture, {}).get(gid, p) if fixture else p
            scores[(student, name, gid)] = score
    return points, scores


@pytest.mark.parametrize(
    "cell", [("02_dot_product.ipynb", "test_learn_hyperparameters"), ("02_dot_product.ipynb", "explain_wd")]
)
def test_difficulty_and_discrimination_match_the_hand_computation(classroom, cell):
    course, planted, report = classroom
    points, scores = _by_hand(course, planted)
    students = sorted(planted["plans"])
    x = np.array([scores[(s, *cell)] for s in students])
    total = np.array([sum(scores[(s, *c)] for c in points) for s in students])
    difficulty = x.mean() / points[cell]
    discrimination = np.corrcoef(x, total - x)[0, 1]
    item = next(c for c in report["cells"] if (c["notebook"], c["grade_id"]) == cell)
    print(f"\n{cell}: difficulty {difficulty:.4f}, discrimination {discrimination:.4f}")
    assert 0 < difficulty < 1 and item["graded"] == len(students)
    assert item["difficulty"] == pytest.approx(difficulty, abs=1e-4)
    assert item["discrimination"] == pytest.approx(discrimination, abs=1e-4)
    assert item["full"] + item["zero"] + item["partial"] == pytest.approx(1.0, abs=1e-3)
    assert report["totals"] == {s: pytest.approx(t, abs=1e-4) for s, t in zip(students, total, strict=True)}
    if cell[1] == "explain_wd":  # hand grades come from the gradebook, as formgrader wrote them
        assert item["kind"] == "hand-graded" and item["statuses"] == {"manually_graded": len(students)}


def test_every_planted_copy_is_listed_and_no_independent_pair(classroom):
    _, planted, report = classroom
    pairs = report["similarity"]["pairs"]
    listed = {(p["a"], p["b"]) for p in pairs}
    assert listed == planted["copied_pairs"]
    assert [p["similarity"] for p in pairs] == sorted((p["similarity"] for p in pairs), reverse=True)
    for p in pairs:  # the copied cells, code and words, side by side
        cells = {c["grade_id"] for c in p["cells"]}
        assert {"DotProductBias", "recommend_for_user"} <= cells, (p["a"], p["b"], cells)
        if SOURCE in (p["a"], p["b"]):
            assert "explain_wd" in cells  # the free-text answer, copied with words changed


def test_the_thresholds_separate_planted_copies_from_independent_answers(classroom):
    """The measurement behind MIN_CELL, MIN_PAIR and THRESHOLD: all pairs, every answer cell, no LSH."""
    course, planted, _ = classroom
    data = load(Course.open(course))
    shared = {}
    for (name, _gid, kind), answers in data.answers.items():
        for pair, (similarity, chars) in pair_scores(answers, kind, data.release_text[(name, kind)]).items():
            if similarity >= THRESHOLD and chars >= MIN_CELL:
                shared[pair] = shared.get(pair, 0) + chars
    copies = {p: shared.get(p, 0) for p in planted["copied_pairs"]}
    others = {p: c for p, c in shared.items() if p not in planted["copied_pairs"]}
    top = max(others.items(), key=lambda kv: kv[1], default=(None, 0))
    print(f"\nplanted copies share {min(copies.values())}..{max(copies.values())} filtered characters; the most any "
          f"independent pair shares is {top[1]} ({top[0]}); MIN_PAIR = {MIN_PAIR}")  # fmt: skip
    assert top[1] < MIN_PAIR <= min(copies.values())


def test_a_failure_message_is_the_error_else_the_last_stderr_line():
    from collabkit.report import _message

    error = {"outputs": [{"output_type": "error", "ename": "AssertionError", "evalue": "got 3\nmore", "traceback": []}]}
    stderr = {
        "outputs": [{"output_type": "stream", "name": "stderr", "text": ["warn 1\n", "too slow: 12.5 s\n", "\n"]}]
    }
    assert _message(error) == "AssertionError: got 3"
    assert _message(stderr) == "too slow: 12.5 s"
    assert _message({"outputs": [{"output_type": "stream", "name": "stdout", "text": "fine"}]}) is None


def test_common_lines_leave_a_gap_that_no_fingerprint_spans():
    from collabkit.report_similarity import GAP, own_lines

    text = "a = 1\nshared = load()\n# a comment\nb = a + 2\n"
    kept, where = own_lines(text, {"shared = load()"})
    assert kept == "a = 1\n" + GAP + "b = a + 2\n"
    assert text[where[kept.index("b")]] == "b" and len(where) == len(kept) + 1


def test_free_text_is_compared_as_words():
    assert words("Weight-decay: keeps the  weights SMALL (wd=0.1).") == "weight decay keeps the weights small wd 0 0"


def test_the_report_refuses_a_course_nobody_graded(tmp_path, capsys):
    course = tmp_path / "course"
    build_class(course)
    for folder in (course / "autograded").iterdir():
        (folder / "collab_filtering" / "grading.json").unlink()
    assert main(["report", "--root", str(course)]) != 0
    assert "run `collabkit grade` first" in capsys.readouterr().err


def test_an_unreadable_record_is_named_and_the_rest_reported(tmp_path):
    course = tmp_path / "course"
    build_class(course)
    (course / "autograded" / COPIES[0] / "collab_filtering" / "grading.json").write_text("{not json")
    from collabkit.report import build

    report, _ = build(Course.open(course), workers=1)
    assert report["unreadable_records"][0].startswith(f"{COPIES[0]}: ")
    assert COPIES[0] not in report["totals"] and SOURCE in report["totals"]


def test_the_bench_part_times_the_report_on_a_written_class(capsys):
    """`collabkit bench`'s report part, on 40 students instead of 1,000: its figures, not its speed."""
    from harness import REPO

    from collabkit.bench_report import time_report

    result = time_report(Course.open(REPO), n=40)
    assert result["students"] == 40 and result["wall_s"] > 0 and result["answer_cells"] > 20
    assert result["planted_found"] == result["planted_pairs"] == 10
    assert result["other_pairs_listed"] == 0
    assert 0 < result["candidate_pairs"] < result["all_pairs"]
    assert "collabkit report, 40 students" in capsys.readouterr().out


@pytest.mark.slow  # Chromium, as the formgrader test (CI installs it)
def test_the_report_opens_in_headless_chromium_and_its_plots_render(classroom, browser, tmp_path):
    course, _, report = classroom
    page_path = course / "exports" / "report.html"
    requests = []
    page = browser.new_page(viewport={"width": 1250, "height": 1500})
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_path.as_uri())
    page.wait_for_load_state("load")
    sizes = page.eval_on_selector_all(
        "img.plot", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight, e.alt])"
    )
    assert len(sizes) == 3 and all(ok and w > 300 and h > 150 for ok, w, h, _ in sizes), sizes
    assert page.locator(".warn").first.inner_text().startswith(f"02_dot_product.ipynb {BROKEN}")
    assert page.locator("table.pair mark").count() > 0  # shared parts marked
    shot = tmp_path / "report.png"
    page.screenshot(path=shot)
    print(f"\nscreenshot: {shot}")
    page.close()
    assert requests and all(u.startswith(("file:", "data:")) for u in requests), "the report needs no network"
    if os.environ.get("COLLABKIT_SCREENSHOTS"):  # refresh the README's picture: COLLABKIT_SCREENSHOTS=docs
        shutil.copy(shot, Path(os.environ["COLLABKIT_SCREENSHOTS"]) / "report.png")
    assert len(report["similarity"]["pairs"]) == len(COPIES) * (len(COPIES) + 1) // 2


def test_the_report_reads_what_real_grading_wrote(graded_copy):
    """End to end on the toy course the kit really graded (conftest's batch: crashed, timed-out, unreadable,
    tampered ... submissions): the statuses and failure messages come from grading.json and the executed
    notebooks as `collabkit grade` wrote them."""
    from collections import Counter

    from bad_submissions import BAD

    assert main(["report", "--root", str(graded_copy), "--workers", "1"]) == 0
    report = json.loads((graded_copy / "exports" / "report.json").read_text())
    assert report["students"] == len(BAD) and not report["unreadable_records"]
    double = next(c for c in report["cells"] if c["grade_id"] == "test_double")
    expected = Counter(cells.get("test_double", (0, "passed"))[1] for _, _, cells in BAD.values())
    assert double["statuses"] == dict(sorted(expected.items()))
    failed = expected["failed"] + expected["timed_out"]
    assert double["messages"] and sum(m["students"] for m in double["messages"]) <= failed
    assert double["difficulty"] == pytest.approx(
        sum(cells.get("test_double", (2,))[0] for _, _, cells in BAD.values()) / 2 / len(BAD), abs=1e-4
    )
    statuses = report["notebooks"]["toy.ipynb"]["statuses"]
    assert statuses.get("crashed") and statuses.get("timed_out") and statuses.get("unreadable")
    assert (graded_copy / "exports" / "report.html").read_text().count("<img class='plot'") == 3
