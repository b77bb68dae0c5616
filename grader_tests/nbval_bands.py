"""A pytest plugin for nbval: numbers that legitimately differ between CPUs are compared within a band.

nbval compares a re-executed cell's outputs with the stored ones as text. Most of the executed
solutions are deterministic across machines and stay exact. The neural model's metrics are
not: float reductions run in a different order on another CPU vendor, so its validation MSE
was 0.8765 on AMD EPYC and 0.8735 on Intel Xeon (same seed, one thread). `--nbval-bands FILE`
names, per notebook and cell (by nbgrader grade id), the band within which each decimal number
of that cell's outputs may differ from the stored one; the file says what was measured. A
number outside its band, or any other difference in the text (a changed title in a list, a
different count, a missing line), still fails exactly as plain nbval would report it.

Load it with `-p nbval_bands` (grader_tests on sys.path) next to `--nbval`.
"""

from __future__ import annotations

import configparser
import copy
import re
from pathlib import Path

NUMBER = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?")


def read_bands(path: Path) -> dict[str, dict[str, float]]:
    """notebook file name -> grade id -> band, from an ini file: `[notebook]` then `grade_id: band`."""
    parser = configparser.ConfigParser()
    parser.optionxform = str  # grade ids are case-sensitive
    parser.read_string(Path(path).read_text())
    return {nb: {gid: float(band) for gid, band in parser[nb].items()} for nb in parser.sections()}


def within_band(ref: str, test: str, band: float) -> str:
    """`test`, with each decimal number that lies within `band` of the number in the same place of
    `ref` written exactly as `ref` writes it. If the text around the numbers differs, or their
    count, `test` comes back unchanged, so the comparison fails and shows the difference."""
    ref_nums, test_nums = NUMBER.findall(ref), NUMBER.findall(test)
    test_text = NUMBER.split(test)
    if NUMBER.split(ref) != test_text or len(ref_nums) != len(test_nums):
        return test
    out = [test_text[0]]
    for r, t, between in zip(ref_nums, test_nums, test_text[1:], strict=True):
        out += [r if abs(float(r) - float(t)) <= band else t, between]
    return "".join(out)


def band_outputs(test: list, ref: list, band: float) -> list:
    """A copy of the fresh outputs `test` with every text field banded against `ref`, output by output."""
    test = copy.deepcopy(test)
    if len(test) != len(ref):
        return test
    for fresh, stored in zip(test, ref, strict=True):
        if fresh.get("output_type") != stored.get("output_type"):
            continue
        if fresh.get("output_type") == "stream" and fresh.get("name") == stored.get("name"):
            fresh["text"] = within_band(stored.get("text", ""), fresh.get("text", ""), band)
        for mime, value in fresh.get("data", {}).items():
            if isinstance(value, str) and isinstance(stored.get("data", {}).get(mime), str):
                fresh["data"][mime] = within_band(stored["data"][mime], value, band)
    return test


def pytest_addoption(parser):
    parser.getgroup("nbval").addoption(
        "--nbval-bands", help="ini file: [notebook] grade_id = band, for numbers that differ between CPUs"
    )


def pytest_configure(config):
    path = config.getoption("nbval_bands")
    if not path:
        return
    from nbval.plugin import IPyNbCell

    bands = read_bands(Path(path))
    compare = IPyNbCell.compare_outputs

    def compare_within_bands(self, test, ref, skip_compare=None):
        grade_id = self.cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        band = bands.get(Path(str(self.fspath)).name, {}).get(grade_id)
        if band is not None:
            test = band_outputs(test, ref, band)
        return compare(self, test, ref, skip_compare)

    IPyNbCell.compare_outputs = compare_within_bands
