"""`collabkit report`, its similarity part: which submissions share answer code or text beyond what everyone shares.

Libraries do the engine work; this module only decides what is compared:
- copydetect (winnowing, MOSS's algorithm) tokenises each answer cell with pygments, replaces
  identifiers by one letter and drops comments and whitespace (`filter_code`), fingerprints the
  result, compares two fingerprints (`compare_files`) and marks the shared parts (`highlight_overlap`).
- datasketch's MinHash LSH finds the candidate pairs of one cell from those fingerprints, so no
  cell is compared all-pairs.
- Here, the notebook side: per answer cell, the lines the release holds (every code cell of the
  released notebook: stubs, seed lines, the lecture's code) and the lines more than half of the
  class wrote alike are dropped before copydetect sees an answer (which also keeps pygments off
  most of a class's text); numbers become 0 (same length, so the marks still fall on the
  student's own text); free-text answers become their lowercased words. Then the fingerprints of
  the release's code and those in more than half of the class's answers (the same code, renamed)
  are removed too.

A listed pair is evidence for a person to read, never a verdict.
"""

from __future__ import annotations

import html
import io
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

K = 20  # characters of filtered code (one per identifier or operator) per fingerprinted k-gram
WINDOW = 4  # winnowing window: any run of K + WINDOW - 1 shared characters is always found
CLASS_SHARE = 0.5  # a fingerprint in more than this share of the class's answers to a cell is everyone's
LSH_JACCARD = 0.2  # candidate pairs: estimated Jaccard of the remaining fingerprints at least this
NUM_PERM = 64
COMMON_TEXTS = 5  # how many of the most frequent arrangements of the class's common lines are fingerprinted
THRESHOLD = 0.6  # a cell counts when the shared part covers at least this share of one answer's remaining code
MIN_CELL = 60  # ... and is at least this many filtered characters long (two or three lines of code);
MIN_PAIR = 200  # a pair is listed when its counted cells share at least this many filtered characters together
THRESHOLD_BASIS = (
    "measured by grader_tests/test_report.py over all pairs of a 34-student class built from the fixture tables: "
    "the six planted copy pairs (variables renamed, statements reordered, comments and words edited) share "
    "889 to 1,082 filtered characters in counted cells; the most any pair of independently written fixture "
    "answers shares is 79"
)

_NUMBER = re.compile(r"\d")
_WORD = re.compile(r"[^\W\d_]+|\d+")


@dataclass
class Answer:
    student: str
    text: str  # what is shown: the student's code, or the normalised words of a free-text answer
    fp: object  # copydetect.CodeFingerprint of the answer's own lines
    where: np.ndarray  # where each character of those lines sits in `text`


def stable_hash(kgram: str) -> int:
    """A k-gram's hash, the same in every process (63 bits: CRC-32 and Adler-32 of its UTF-8)."""
    b = kgram.encode()
    return (zlib.crc32(b) << 31) ^ zlib.adler32(b)


def _stable_kgrams(string: str, k: int) -> np.ndarray:
    return np.array([stable_hash(string[i : i + k]) for i in range(len(string) - k + 1)], dtype=np.int64)


def fingerprint(text: str, kind: str):
    """A copydetect fingerprint of one answer: code (pygments-filtered, numbers as 0) or free text (already words).

    copydetect hashes k-grams with Python's hash(), which is salted per process, so winnowing would keep
    different fingerprints from run to run; its `hashed_kgrams` is replaced by `stable_hash` so that two
    runs (and two worker processes) list the same pairs."""
    import copydetect.utils
    from copydetect import CodeFingerprint

    copydetect.utils.hashed_kgrams = _stable_kgrams

    if kind == "code":
        return CodeFingerprint("answer.py", K, WINDOW, language="python", fp=io.StringIO(_NUMBER.sub("0", text)))
    return CodeFingerprint("answer.txt", K, WINDOW, filter=False, fp=io.StringIO(text))


GAP = "\n?\n"  # stands for dropped lines: a token pygments keeps as it is, and no Python answer holds


def own_lines(text: str, common: set[str]) -> tuple[str, np.ndarray]:
    """The answer less its blank and comment lines and the lines in `common` (the release's, and those most
    of the class wrote alike), a GAP where lines were dropped, and where each remaining character sits in
    `text`. Fingerprints across a GAP are dropped later (`_gap_hashes`): lines never join across one."""
    kept, where, pos, gap = [], [], 0, False
    for line in text.splitlines(keepends=True):
        key = line.strip()
        if key and not key.startswith("#") and key not in common:
            if gap and kept:
                kept.append(GAP)
                where.extend([pos] * len(GAP))
            kept.append(line if line.endswith("\n") else line + "\n")
            where.extend(range(pos, pos + len(line)))
            where.extend([pos + len(line) - 1] * (not line.endswith("\n")))
            gap = False
        elif key:
            gap = True
        pos += len(line)
    return "".join(kept), np.array([*where, pos], dtype=np.int64)


def _gap_hashes(fp) -> set:
    """The fingerprints of k-grams that span a GAP."""
    code, k = fp.filtered_code, fp.k
    if "?" not in code:
        return set()
    return {stable_hash(code[i : i + k]) for i in range(len(code) - k + 1) if "?" in code[i : i + k]}


def words(text: str) -> str:
    """Free text as its lowercased words, numbers as 0, one space between (punctuation and layout gone)."""
    return " ".join("0" if w.isdigit() else w for w in _WORD.findall(text.lower()))


def _drop(fp, hashes: set) -> None:
    """Remove fingerprints (the release's, the class's) from one answer, as copydetect's boilerplate does."""
    from copydetect.utils import get_token_coverage

    gone = fp.hashes & hashes
    if gone:
        fp.hashes = fp.hashes - gone
        for h in gone:
            fp.hash_idx.pop(h, None)
        fp.token_coverage = get_token_coverage(fp.hash_idx, fp.k, len(fp.filtered_code))


@lru_cache(maxsize=4096)
def _release_hashes(text: str, kind: str) -> frozenset:
    return frozenset(fingerprint(text if kind == "code" else words(text), kind).hashes)


def cell_pairs(task: tuple) -> tuple[tuple, list[dict], dict]:
    """One answer cell's listed pairs: `task` is ((notebook, grade_id, kind), answers, release_text); for a process pool."""
    key, answers, release_text = task
    return (key, *similar_pairs(answers, key[2], release_text))


def _low32(h) -> int:
    return int(h) & 0xFFFFFFFF


def similar_pairs(answers: dict[str, str], kind: str, release_text: list[str]) -> tuple[list[dict], dict]:
    """The pairs of students whose answers to one cell share code (or words) beyond the release and the class.

    `answers`: student -> the cell's text; `release_text`: the released notebook's cells of the same kind.
    Returns the listed pairs (strongest first) and counts (answers compared, candidate pairs).
    """
    from copydetect import compare_files
    from datasketch import MinHash, MinHashLSH

    own = _prepared(answers, kind, release_text)
    lsh = MinHashLSH(threshold=LSH_JACCARD, num_perm=NUM_PERM)
    sketches, first = {}, MinHash(num_perm=NUM_PERM, seed=42, hashfunc=_low32)
    for s, a in own.items():
        m = MinHash(NUM_PERM, 42, _low32, permutations=first.permutations, scheme=first.scheme)
        m.update_batch(list(a.fp.hashes))
        sketches[s] = m
        lsh.insert(s, m)
    candidates = {tuple(sorted((s, t))) for s, m in sketches.items() for t in lsh.query(m) if t != s}
    pairs = []
    for a, b in sorted(candidates):
        overlap, (sim_a, sim_b), (slices_a, slices_b) = compare_files(own[a].fp, own[b].fp)
        similarity = float(max(sim_a, sim_b))
        if overlap < MIN_CELL or similarity < THRESHOLD:
            continue
        pairs.append(
            dict(
                a=a,
                b=b,
                similarity=round(similarity, 3),
                shared_chars=int(overlap),
                a_html=_marked(own[a], slices_a),
                b_html=_marked(own[b], slices_b),
            )
        )
    pairs.sort(key=lambda p: (-p["similarity"], p["a"], p["b"]))
    return pairs, dict(compared=len(own), candidates=len(candidates))


def _marked(answer: Answer, slices) -> str:
    """The answer as HTML with the shared parts (slices of its own lines) marked where they sit in the answer."""
    from copydetect.utils import highlight_overlap

    slices = np.asarray(slices, dtype=np.int64)
    if slices.size == 0:
        return html.escape(answer.text)
    where = answer.where
    back = np.array(
        [where[np.clip(slices[0], 0, len(where) - 1)], where[np.clip(slices[1] - 1, 0, len(where) - 1)] + 1]
    )
    return highlight_overlap(answer.text, back, "<mark>", "</mark>", escape_html=True)[0]


def _prepared(answers: dict[str, str], kind: str, release_text: list[str]) -> dict[str, Answer]:
    """Each non-empty answer fingerprinted (each distinct text once), less the release's and the class's
    fingerprints; those with any left."""
    answers = {s: t for s, t in answers.items() if t.strip()}
    if kind == "code":
        released_lines = {line.strip() for text in release_text for line in text.splitlines()}
        counts = Counter(line for t in answers.values() for line in {x.strip() for x in t.splitlines()})
        common = released_lines | {line for line, c in counts.items() if c > CLASS_SHARE * max(len(answers), 2)}
        shown, reduced = dict(answers), {s: own_lines(t, common) for s, t in answers.items()}
        # The class's common code as most answers hold it (in order), so that the same code renamed or
        # commented differently is dropped below with the release's
        held = Counter("\n".join(x for x in t.splitlines() if x.strip() in common) for t in answers.values())
        release_text = [*release_text, *(t for t, _ in held.most_common(COMMON_TEXTS) if t)]
    else:
        shown = {s: words(t) for s, t in answers.items()}
        reduced = {s: (t, np.arange(len(t) + 1)) for s, t in shown.items()}
    once = {r: fingerprint(r, kind) for r, _ in reduced.values() if r.strip()}
    fps = {s: Answer(s, shown[s], once[r], where) for s, (r, where) in reduced.items() if r.strip()}
    released = set().union(*(_release_hashes(text, kind) for text in release_text))
    counts = Counter(h for a in fps.values() for h in a.fp.hashes)
    common = {h for h, c in counts.items() if c > CLASS_SHARE * max(len(fps), 2)}
    for fp in once.values():
        _drop(fp, released | common | _gap_hashes(fp))
    return {s: a for s, a in fps.items() if len(a.fp.hashes) >= 2}


def pair_scores(answers: dict[str, str], kind: str, release_text: list[str]) -> dict[tuple[str, str], tuple]:
    """Every pair's (similarity, shared characters) on one cell, all pairs, for the thresholds' measurement
    (tests only: quadratic)."""
    from copydetect import compare_files

    own = _prepared(answers, kind, release_text)
    names = sorted(own)
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            overlap, sims, _ = compare_files(own[a].fp, own[b].fp)
            out[(a, b)] = (float(max(sims)), int(overlap))
    return out
