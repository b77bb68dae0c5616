"""Unit tests of collabkit/grading/sanitize.py: one section per pass of `PASSES`, then `read`,
the whole `sanitize` and `hidden_lines`.

Each pass is run alone on a tiny notebook from notebooks.py (the release, damaged one way),
the way nbgrader tests each preprocessor on its own (nbgrader/tests/preprocessors/). Each
test asserts the notebook after the pass (what changed and what did not) and the exact
repairs. Every pass also gets the untouched submission, which must come out unchanged with
no repair. In memory only: no kernel, no gradebook.
"""

from __future__ import annotations

import copy
import json

import nbformat
import notebooks as N
import pytest
from notebooks import AT, by_id, grade_ids

from collabkit.grading import sanitize as S
from collabkit.grading.sanitize import Repair, Unreadable

RELEASE_ORDER = ["setup", None, "answer", "test_double", "explain", "task_plot", "test_big"]


def run_pass(step, nb, upgraded=False):
    """Run one pass on `nb` in place against the tiny release; return its repairs."""
    return step(nb, N.context(upgraded))


def test_a_repair_reads_as_its_cell_and_detail():
    assert str(Repair("edited", "test_double", "restored", tampering=True)) == "test_double: restored"
    assert (
        str(Repair("kernelspec", None, "kernelspec 'ir' replaced by 'python3'"))
        == "kernelspec 'ir' replaced by 'python3'"
    )


def test_passes_are_the_documented_chain_in_order():
    assert [p.__name__ for p in S.PASSES] == [
        "drop_unknown_metadata",
        "drop_duplicates",
        "restore_cell_types",
        "restore_metadata",
        "remove_skip_tags",
        "restore_editability",
        "restore_read_only_source",
        "reinsert_missing",
        "inline_reference",
        "fix_cell_ids",
        "restore_kernelspec",
        "clear_outputs",
        "drop_invalid_metadata",
    ]


# Passes that leave an untouched submission exactly as it is. restore_read_only_source is the
# one exception (it writes the hidden tests in, without a repair): see its own section.
UNCHANGING = [p for p in S.PASSES if p is not S.restore_read_only_source]


@pytest.mark.parametrize("step", UNCHANGING, ids=lambda p: p.__name__)
def test_an_untouched_submission_gets_no_repair_and_no_change(step):
    nb = N.submission()
    assert run_pass(step, nb) == []
    assert nb == N.release()


# ---------------------------------------------------------------------------- drop_unknown_metadata


def test_unknown_metadata_claiming_points_is_removed_as_tampering():
    nb = N.submission()
    nb.cells.append(N.cell("code", "print('bonus')", "bonus", grade=True, locked=True, points=5, cell_id="c-bonus"))
    assert run_pass(S.drop_unknown_metadata, nb) == [
        Repair(
            "unknown_cell",
            "bonus",
            "nbgrader metadata on a cell the gradebook does not know was removed",
            tampering=True,
        )
    ]
    assert "nbgrader" not in nb.cells[-1].metadata
    assert nb.cells[-1].source == "print('bonus')"
    assert nb.cells[:-1] == N.release().cells


def test_unknown_metadata_without_points_is_removed_without_tampering():
    nb = N.submission()
    nb.cells.insert(3, N.cell("code", "x = 1", "answer-copy", solution=True, cell_id="c-copy"))
    assert run_pass(S.drop_unknown_metadata, nb) == [
        Repair("unknown_cell", "answer-copy", "nbgrader metadata on a cell the gradebook does not know was removed")
    ]
    assert grade_ids(nb) == ["setup", None, "answer", None, "test_double", "explain", "task_plot", "test_big"]


def test_nbgrader_metadata_without_a_grade_id_is_removed_with_no_grade_id_in_the_repair():
    nb = N.submission()
    nb.cells[1].metadata["nbgrader"] = {"grade": False, "solution": False}
    assert N.repairs_of(run_pass(S.drop_unknown_metadata, nb)) == [("unknown_cell", None, False)]
    assert nb == N.release()


# ---------------------------------------------------------------------------- drop_duplicates


def test_a_duplicate_read_only_cell_is_removed_and_the_first_kept():
    nb = N.submission()
    dup = copy.deepcopy(nb.cells[AT["test_double"]])
    dup["id"] = "c-dup"
    nb.cells.append(dup)
    assert run_pass(S.drop_duplicates, nb) == [
        Repair("duplicate", "test_double", "a duplicate of this read-only cell was removed")
    ]
    assert nb == N.release()


def test_a_duplicate_answer_cell_stays_as_an_ordinary_cell():
    nb = N.submission()
    dup = copy.deepcopy(nb.cells[AT["answer"]])
    dup.source, dup["id"] = N.SOLVED, "c-dup"
    nb.cells.insert(AT["answer"] + 1, dup)
    assert run_pass(S.drop_duplicates, nb) == [
        Repair(
            "duplicate",
            "answer",
            "a duplicate of this answer cell is kept as an ordinary cell (only the first is graded)",
        )
    ]
    assert grade_ids(nb) == ["setup", None, "answer", None, "test_double", "explain", "task_plot", "test_big"]
    assert nb.cells[AT["answer"]] == N.release().cells[AT["answer"]]
    assert nb.cells[AT["answer"] + 1].source == N.SOLVED
    assert nb.cells[AT["answer"] + 1]["id"] == "c-dup"


# ---------------------------------------------------------------------------- restore_cell_types


def test_an_answer_turned_into_markdown_is_turned_back_into_code_keeping_its_text():
    nb = N.submission()
    i = AT["answer"]
    md = nbformat.v4.new_markdown_cell(N.SOLVED, metadata=copy.deepcopy(nb.cells[i].metadata), id="c-answer")
    nb.cells[i] = md
    assert run_pass(S.restore_cell_types, nb) == [Repair("retyped", "answer", "turned from markdown back into code")]
    back = nb.cells[i]
    assert (back.cell_type, back.source, back["id"], back.outputs, back.execution_count) == (
        "code",
        N.SOLVED,
        "c-answer",
        [],
        None,
    )
    assert back.metadata == N.release().cells[i].metadata
    assert [c for j, c in enumerate(nb.cells) if j != i] == [c for j, c in enumerate(N.release().cells) if j != i]


def test_a_markdown_answer_turned_into_raw_is_turned_back_into_markdown():
    nb = N.submission()
    i = AT["explain"]
    nb.cells[i] = nbformat.v4.new_raw_cell("My answer.", metadata=copy.deepcopy(nb.cells[i].metadata), id="c-explain")
    assert N.repairs_of(run_pass(S.restore_cell_types, nb)) == [("retyped", "explain", False)]
    assert (nb.cells[i].cell_type, nb.cells[i].source) == ("markdown", "My answer.")


# ---------------------------------------------------------------------------- restore_metadata


def test_changed_points_are_restored_as_tampering():
    nb = N.submission()
    nb.cells[AT["test_double"]].metadata.nbgrader.points = 10
    assert run_pass(S.restore_metadata, nb) == [
        Repair("points", "test_double", "points changed from 2 to 10; restored", tampering=True)
    ]
    assert nb == N.release()


def test_a_changed_flag_is_restored_as_tampering():
    nb = N.submission()
    nb.cells[AT["setup"]].metadata.nbgrader.locked = False
    assert run_pass(S.restore_metadata, nb) == [
        Repair("metadata", "setup", "nbgrader metadata (locked) restored", tampering=True)
    ]
    assert nb == N.release()


def test_points_and_flags_changed_together_give_two_repairs():
    nb = N.submission()
    meta = nb.cells[AT["test_big"]].metadata.nbgrader
    meta.points, meta.grade, meta.solution = 9, False, True
    assert run_pass(S.restore_metadata, nb) == [
        Repair("points", "test_big", "points changed from 1 to 9; restored", tampering=True),
        Repair("metadata", "test_big", "nbgrader metadata (grade, solution) restored", tampering=True),
    ]
    assert nb == N.release()


def test_a_changed_checksum_is_restored_without_tampering():
    nb = N.submission()
    nb.cells[AT["answer"]].metadata.nbgrader.checksum = "0" * 32
    del nb.cells[AT["answer"]].metadata.nbgrader["schema_version"]
    assert run_pass(S.restore_metadata, nb) == [
        Repair("metadata", "answer", "nbgrader metadata (checksum, schema_version) restored")
    ]
    assert nb == N.release()


# ---------------------------------------------------------------------------- remove_skip_tags


def test_a_tag_that_tolerates_errors_is_removed_as_tampering_and_other_tags_stay():
    nb = N.submission()
    nb.cells[AT["test_double"]].metadata.tags = ["raises-exception", "mine"]
    assert run_pass(S.remove_skip_tags, nb) == [
        Repair(
            "tag",
            "test_double",
            "tags ['raises-exception'] that skip execution or tolerate errors were removed",
            tampering=True,
        )
    ]
    assert nb.cells[AT["test_double"]].metadata.tags == ["mine"]


def test_skip_tags_match_whatever_their_case_and_an_emptied_tag_list_goes():
    nb = N.submission()
    nb.cells[AT["test_big"]].metadata.tags = ["Skip-Execution", "SKIP"]
    assert N.repairs_of(run_pass(S.remove_skip_tags, nb)) == [("tag", "test_big", True)]
    assert nb == N.release()


def test_tags_that_are_not_a_list_are_removed_as_tampering():
    nb = N.submission()
    nb.cells[AT["test_big"]].metadata["tags"] = "skip"
    assert run_pass(S.remove_skip_tags, nb) == [
        Repair("tag", "test_big", "tags skip that skip execution or tolerate errors were removed", tampering=True)
    ]
    assert nb == N.release()


def test_harmless_tags_on_a_known_cell_are_not_a_repair():
    nb = N.submission()
    nb.cells[AT["answer"]].metadata.tags = ["mine", "solution"]
    assert run_pass(S.remove_skip_tags, nb) == []
    assert nb.cells[AT["answer"]].metadata.tags == ["mine", "solution"]


def test_skip_tags_on_a_students_own_cell_are_left_alone():
    nb = N.submission()
    nb.cells[1].metadata.tags = ["skip-execution"]
    assert run_pass(S.remove_skip_tags, nb) == []
    assert nb.cells[1].metadata.tags == ["skip-execution"]


# ---------------------------------------------------------------------------- restore_editability


def test_editable_and_deletable_are_the_releases_without_a_repair():
    nb = N.submission()
    nb.cells[AT["test_double"]].metadata.editable = True
    del nb.cells[AT["test_double"]].metadata["deletable"]
    nb.cells[AT["answer"]].metadata.editable = False  # the release has no `editable` on an answer
    assert run_pass(S.restore_editability, nb) == []
    assert nb == N.release()


def test_editability_of_a_students_own_cell_is_left_alone():
    nb = N.submission()
    nb.cells[1].metadata.editable = False
    assert run_pass(S.restore_editability, nb) == []
    assert nb.cells[1].metadata.editable is False


# ---------------------------------------------------------------------------- restore_read_only_source


def test_an_untouched_read_only_cell_gets_its_hidden_tests_back_without_a_repair():
    nb = N.submission()
    assert run_pass(S.restore_read_only_source, nb) == []
    assert nb == N.graded_copy()
    assert "BEGIN HIDDEN TESTS" in nb.cells[AT["test_double"]].source


def test_whitespace_at_line_ends_is_not_an_edit():
    nb = N.submission()
    nb.cells[AT["test_double"]].source = "\n" + N.TEST_SHOWN.replace("\n", "   \n") + "\n\n"
    assert run_pass(S.restore_read_only_source, nb) == []
    assert nb.cells[AT["test_double"]].source == N.TEST_FULL


def test_an_edited_test_cell_is_restored_as_tampering():
    nb = N.submission()
    nb.cells[AT["test_double"]].source = "# " + N.TEST_SHOWN.replace("\n", "\n# ")
    assert run_pass(S.restore_read_only_source, nb) == [
        Repair("edited", "test_double", "this read-only cell was edited; the original was restored", tampering=True)
    ]
    assert nb == N.graded_copy()


def test_an_edited_read_only_markdown_task_is_restored():
    nb = N.submission()
    nb.cells[AT["task_plot"]].source = "Nothing to do here."
    assert N.repairs_of(run_pass(S.restore_read_only_source, nb)) == [("edited", "task_plot", True)]
    assert nb.cells[AT["task_plot"]].source == N.TASK


def test_answers_and_ordinary_cells_keep_the_students_text():
    nb = N.submission()
    nb.cells[AT["answer"]].source = N.SOLVED
    nb.cells[AT["explain"]].source = "Because."
    nb.cells[1].source = "my notes"
    assert run_pass(S.restore_read_only_source, nb) == []
    assert [nb.cells[i].source for i in (1, AT["answer"], AT["explain"])] == ["my notes", N.SOLVED, "Because."]


# ---------------------------------------------------------------------------- reinsert_missing


def test_a_deleted_test_cell_comes_back_after_the_cell_before_it_with_its_hidden_tests():
    nb = N.submission()
    del nb.cells[AT["test_double"]]
    assert run_pass(S.reinsert_missing, nb) == [
        Repair("reinserted", "test_double", "this cell was missing and was put back")
    ]
    assert grade_ids(nb) == RELEASE_ORDER
    back = nb.cells[AT["test_double"]]
    assert back.source == N.TEST_FULL
    assert back.metadata == N.release().cells[AT["test_double"]].metadata
    assert back["id"] not in {c["id"] for c in N.release().cells}
    others = [j for j in range(7) if j != AT["test_double"]]
    assert [nb.cells[j] for j in others] == [N.release().cells[j] for j in others]


def test_a_deleted_answer_comes_back_unanswered_right_after_the_known_cell_before_it():
    nb = N.submission()
    del nb.cells[AT["answer"]]
    assert run_pass(S.reinsert_missing, nb) == [
        Repair("reinserted", "answer", "this cell was missing and was put back (unanswered)")
    ]
    # after `setup`, the known cell before it: the ordinary instruction cell now follows it
    assert grade_ids(nb) == ["setup", "answer", None, "test_double", "explain", "task_plot", "test_big"]
    assert nb.cells[1].source == N.ANSWER
    assert nb.cells[1].metadata == N.release().cells[AT["answer"]].metadata


def test_a_deleted_first_cell_comes_back_first():
    nb = N.submission()
    del nb.cells[0]
    assert N.repairs_of(run_pass(S.reinsert_missing, nb)) == [("reinserted", "setup", False)]
    assert grade_ids(nb) == RELEASE_ORDER


def test_every_known_cell_deleted_comes_back_in_release_order_before_the_students_cells():
    nb = N.submission()
    nb.cells = [N.cell("code", "print('mine')", cell_id="c-mine")]
    assert N.repairs_of(run_pass(S.reinsert_missing, nb)) == [
        ("reinserted", g, False) for g in ["setup", "answer", "test_double", "explain", "task_plot", "test_big"]
    ]
    assert grade_ids(nb) == ["setup", "answer", "test_double", "explain", "task_plot", "test_big", None]
    assert nb.cells[-1].source == "print('mine')"


# ---------------------------------------------------------------------------- fix_cell_ids


def test_duplicate_invalid_and_missing_cell_ids_are_replaced_with_one_repair():
    nb = N.submission()
    nb.cells[1]["id"] = "c-setup"  # a duplicate: the first keeps it
    nb.cells[2]["id"] = "not a valid id!"
    del nb.cells[4]["id"]
    assert run_pass(S.fix_cell_ids, nb) == [
        Repair("cell_id", None, "3 missing, invalid or duplicate cell ids replaced")
    ]
    ids = [c["id"] for c in nb.cells]
    assert len(set(ids)) == len(ids)
    assert all(S.CELL_ID.match(i) for i in ids)
    assert ids[0] == "c-setup" and ids[3] == "c-test-double" and ids[5:] == ["c-task-plot", "c-test-big"]
    assert ids[1] != "c-setup" and ids[2] != "not a valid id!"


def test_cell_ids_replaced_after_an_upgrade_are_not_a_repair():
    nb = N.submission()
    nb.cells[1]["id"] = "c-setup"
    assert run_pass(S.fix_cell_ids, nb, upgraded=True) == []
    assert nb.cells[1]["id"] != "c-setup"


# ---------------------------------------------------------------------------- restore_kernelspec


def test_another_kernel_is_replaced_by_the_releases():
    nb = N.submission()
    nb.metadata.kernelspec = {"display_name": "R", "language": "R", "name": "ir"}
    nb.metadata.language_info = {"name": "R"}
    assert run_pass(S.restore_kernelspec, nb) == [Repair("kernelspec", None, "kernelspec 'ir' replaced by 'python3'")]
    assert nb == N.release()


def test_a_missing_kernelspec_is_put_back():
    nb = N.submission()
    del nb.metadata["kernelspec"]
    assert run_pass(S.restore_kernelspec, nb) == [Repair("kernelspec", None, "kernelspec None replaced by 'python3'")]
    assert nb == N.release()


def test_a_changed_language_info_alone_is_restored_without_a_repair():
    nb = N.submission()
    nb.metadata.language_info = {"name": "python", "version": "3.8.0"}
    assert run_pass(S.restore_kernelspec, nb) == []
    assert nb == N.release()


def test_a_release_without_a_kernelspec_leaves_the_students_alone():
    nb = N.submission()
    nb.metadata.kernelspec = {"display_name": "R", "language": "R", "name": "ir"}
    ctx = N.context()
    del ctx.release.metadata["kernelspec"]
    assert S.restore_kernelspec(nb, ctx) == []
    assert nb.metadata.kernelspec.name == "ir"


# ---------------------------------------------------------------------------- clear_outputs


def test_outputs_counts_and_timings_are_cleared_without_a_repair():
    nb = N.submission()
    for c in nb.cells:
        c.metadata.execution = {"iopub.execute_input": "2024-01-01T00:00:00Z"}
        if c.cell_type == "code":
            c.outputs, c.execution_count = [N.stdout("4\n"), N.result("0.5")], 7
    assert run_pass(S.clear_outputs, nb) == []
    assert nb == N.release()


# ---------------------------------------------------------------------------- read


def test_read_a_4_5_notebook_is_no_repair():
    nb, repairs = S.read(nbformat.writes(N.release()).encode())
    assert repairs == []
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    assert [c["id"] for c in nb.cells] == [c["id"] for c in N.release().cells]


def test_read_upgrades_a_4_4_notebook_with_a_format_repair():
    raw = json.loads(nbformat.writes(N.release()))
    raw["nbformat_minor"] = 4
    for c in raw["cells"]:
        del c["id"]
    nb, repairs = S.read(json.dumps(raw).encode())
    assert repairs == [Repair("format", None, "upgraded from nbformat 4.4 to 4.5")]
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)


def test_read_upgrades_an_nbformat_3_notebook_with_a_format_repair():
    v3 = {
        "nbformat": 3,
        "nbformat_minor": 0,
        "metadata": {"name": "old"},
        "worksheets": [
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "input": "x = 1",
                        "language": "python",
                        "outputs": [],
                        "metadata": {},
                        "prompt_number": 1,
                    },
                    {"cell_type": "markdown", "source": "Some text", "metadata": {}},
                ]
            }
        ],
    }
    nb, repairs = S.read(json.dumps(v3).encode())
    assert repairs == [Repair("format", None, "upgraded from nbformat 3.0 to 4.5")]
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    assert [(c.cell_type, c.source) for c in nb.cells] == [("code", "x = 1"), ("markdown", "Some text")]


def test_read_accepts_a_utf8_byte_order_mark():
    data = b"\xef\xbb\xbf" + nbformat.writes(N.release()).encode("utf-8")
    nb, repairs = S.read(data)
    assert repairs == []
    assert len(nb.cells) == 7


@pytest.mark.parametrize(
    "data, message",
    [
        (b'{"cells": [', "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[1, 2]", "valid JSON, but not a Jupyter notebook (no nbformat version)"),
        (b'{"nbformat": "4", "cells": []}', "valid JSON, but not a Jupyter notebook (no nbformat version)"),
        (b'{"nbformat": 5, "nbformat_minor": 0, "cells": []}', "nbformat 5 is not supported (3 or 4 expected)"),
        (
            b'{"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": [{"input": "x"}]}]}',
            "nbformat 3.0 that cannot be converted (ValidationError: ",
        ),
        (b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "the notebook has no list of cells"),
        (b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": 3}', "the notebook has no list of cells"),
    ],
    ids=[
        "broken-json",
        "not-utf8",
        "json-list",
        "version-string",
        "nbformat-5",
        "broken-v3",
        "no-cells",
        "cells-not-list",
    ],
)
def test_read_refuses_what_is_not_a_notebook(data, message):
    with pytest.raises(Unreadable) as err:
        S.read(data)
    assert str(err.value).startswith(message), str(err.value)


# ---------------------------------------------------------------------------- sanitize, all passes


def damaged() -> nbformat.NotebookNode:
    """A submission with one of nearly every kind of damage, in a 4.5 notebook."""
    nb = N.submission()
    c = nb.cells
    c[AT["answer"]].source = N.SOLVED
    c[AT["answer"]].outputs, c[AT["answer"]].execution_count = [N.stdout()], 3
    c[AT["test_double"]].source = "pass"  # edited test
    c[AT["test_double"]].metadata.tags = ["raises-exception"]  # and told to tolerate errors
    c[AT["test_big"]].metadata.nbgrader.points = 100  # points raised
    c[AT["explain"]] = nbformat.v4.new_raw_cell(
        "Because.", metadata=copy.deepcopy(c[AT["explain"]].metadata), id="c-explain"
    )  # retyped answer
    mine = N.cell("code", "print('mine')", "bonus", grade=True, points=5, cell_id="c-mine")  # unknown metadata
    dup = copy.deepcopy(c[AT["setup"]])
    dup["id"] = "c-dup"
    nb.cells = [c[0], c[1], c[2], c[3], mine, c[4], dup, c[6]]  # task_plot deleted, setup duplicated
    nb.metadata.kernelspec = {"display_name": "Other", "language": "python", "name": "other"}
    return nb


def test_sanitize_repairs_every_kind_of_damage_pass_by_pass():
    nb = damaged()
    before = copy.deepcopy(nb)
    out, repairs = S.sanitize(nb, N.release(), N.specs())
    assert N.repairs_of(repairs) == [
        ("unknown_cell", "bonus", True),
        ("duplicate", "setup", False),
        ("retyped", "explain", False),
        ("points", "test_big", True),
        ("tag", "test_double", True),
        ("edited", "test_double", True),
        ("reinserted", "task_plot", False),
        ("kernelspec", None, False),
    ]
    nbformat.validate(out)
    assert nb == before  # the submission itself is not touched
    ids = [c["id"] for c in out.cells]
    assert len(set(ids)) == len(ids)
    assert grade_ids(out) == ["setup", None, "answer", "test_double", None, "explain", "task_plot", "test_big"]
    assert out.cells[AT["test_double"]].source == N.TEST_FULL
    assert "tags" not in out.cells[AT["test_double"]].metadata
    assert out.cells[2].source == N.SOLVED and out.cells[2].outputs == [] and out.cells[2].execution_count is None
    assert out.cells[4].source == "print('mine')" and "nbgrader" not in out.cells[4].metadata
    assert (out.cells[5].cell_type, out.cells[5].source) == ("markdown", "Because.")
    assert out.cells[6].source == N.TASK
    assert by_id(out, "test_big").metadata.nbgrader.points == 1
    assert out.metadata.kernelspec == N.KERNELSPEC


def test_sanitize_leaves_an_untouched_submission_as_released_plus_hidden_tests():
    out, repairs = S.sanitize(N.submission(), N.release(), N.specs())
    assert repairs == []
    assert out == N.graded_copy()
    nbformat.validate(out)


# Cell ids: inside sanitize() too, a duplicate, missing or invalid id is replaced and reported,
# unless read() upgraded an old format (whose ids are all new anyway).
@pytest.mark.filterwarnings("ignore::nbformat.warnings.DuplicateCellId")
@pytest.mark.parametrize("upgraded, expected", [(False, [("cell_id", None, False)]), (True, [])])
def test_sanitize_reports_replaced_cell_ids_unless_read_upgraded_the_format(upgraded, expected):
    nb = N.submission()
    nb.cells[1]["id"] = nb.cells[0]["id"]
    out, repairs = S.sanitize(nb, N.release(), N.specs(), upgraded=upgraded)
    assert len({c["id"] for c in out.cells}) == 7
    assert N.repairs_of(repairs) == expected


def test_sanitize_reports_missing_cell_ids_in_a_4_5_notebook():
    raw = json.loads(nbformat.writes(N.release()))
    del raw["cells"][1]["id"]
    nb, repairs = S.read(json.dumps(raw).encode())
    assert repairs == []
    out, more = S.sanitize(nb, N.release(), N.specs(), upgraded=False)
    assert more == [Repair("cell_id", None, "1 missing, invalid or duplicate cell ids replaced")]


def test_sanitize_replaces_an_invalid_cell_id_instead_of_failing():
    nb = N.submission()
    nb.cells[AT["answer"]]["id"] = "my answer!"
    nb.cells[AT["answer"]].source = N.SOLVED
    out, repairs = S.sanitize(nb, N.release(), N.specs())
    assert repairs == [Repair("cell_id", None, "1 missing, invalid or duplicate cell ids replaced")]
    assert out.cells[AT["answer"]].source == N.SOLVED
    assert S.CELL_ID.match(out.cells[AT["answer"]]["id"])


@pytest.mark.parametrize("where", ["cell", "notebook"])
def test_sanitize_grades_a_notebook_whose_standard_metadata_has_the_wrong_type(where):
    nb = N.submission()
    nb.cells[AT["answer"]].source = N.SOLVED
    if where == "cell":
        nb.cells[AT["answer"]].metadata["collapsed"] = "yes"
    else:
        nb.metadata["authors"] = "me"
    out, repairs = S.sanitize(nb, N.release(), N.specs())
    nbformat.validate(out)
    assert out.cells[AT["answer"]].source == N.SOLVED
    assert grade_ids(out) == RELEASE_ORDER


def test_sanitize_drops_cells_that_are_not_objects_and_keeps_the_rest():
    nb = N.submission()
    nb.cells.insert(1, "not a cell")
    out, repairs = S.sanitize(nb, N.release(), N.specs())
    assert repairs == []
    assert grade_ids(out) == RELEASE_ORDER


# ---------------------------------------------------------------------------- hidden_lines


def test_hidden_lines_are_the_long_hidden_lines_the_release_does_not_show():
    specs = N.specs()
    specs["test_big"].source = (
        f"{N.TEST_BIG}\n### BEGIN HIDDEN TESTS\n"
        f"{N.TEST_BIG}\n"  # shown in the release: not hidden
        "    assert double(0) == 0\n"  # hidden, stripped
        "### END HIDDEN TESTS\nprint('after the hidden block')"
    )
    assert S.hidden_lines(specs, N.release()) == [
        N.HIDDEN,  # longest first
        "assert double(0) == 0",
    ]  # "assert 1" is under 12 characters: not worth redacting


def test_hidden_lines_are_empty_without_hidden_tests():
    specs = N.specs()
    specs["test_double"].source = N.TEST_SHOWN
    assert S.hidden_lines(specs, N.release()) == []


# ---------------------------------------------------------------------------- drop_invalid_metadata


def test_drop_invalid_metadata_removes_only_the_keys_nbformat_refuses():
    nb = N.submission()
    nb.cells[AT["answer"]].metadata["collapsed"] = "yes"
    nb.cells[AT["answer"]].metadata["tags"] = ["mine"]
    nb.metadata["authors"] = "me"
    repairs = S.drop_invalid_metadata(nb, N.context())
    assert [(r.kind, r.grade_id, r.tampering) for r in repairs] == [("metadata", None, False)]
    assert "collapsed" in repairs[0].detail and "authors" in repairs[0].detail
    assert "collapsed" not in nb.cells[AT["answer"]].metadata and "authors" not in nb.metadata
    assert nb.cells[AT["answer"]].metadata["tags"] == ["mine"], "valid metadata stays"
    nbformat.validate(nb)


def test_drop_invalid_metadata_leaves_a_valid_notebook_alone():
    nb = N.submission()
    before = copy.deepcopy(nb)
    assert S.drop_invalid_metadata(nb, N.context()) == []
    assert nb == before
