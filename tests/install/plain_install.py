"""A plain install of hubcluster, as a hub gets it: the wheel built from this tree,
installed without extras into a fresh virtualenv.

Built once per content of the sources that go into the wheel and kept under
$HUBCLUSTER_TEST_CACHE (default: <tmp>/hubcluster-test-cache), so a second test run starts
at once. The dependencies are collected as wheels next to it (the wheelhouse), so that the
Ansible role can install the same wheel on its hubs without an index.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What pyproject.toml packs into the wheel, and what the build reads besides.
PACKAGES = ("hubcluster", "hub", "hubctl", "client_agent")
BUILD_FILES = ("pyproject.toml", "README.md", "LICENSE", "constraints.txt")
CACHE = Path(
    os.environ.get("HUBCLUSTER_TEST_CACHE") or Path(tempfile.gettempdir()) / "hubcluster-test-cache"
)
BUILD_TIMEOUT = 540  # seconds; a first build may fetch the dependencies from the index


@dataclass(frozen=True)
class PlainInstall:
    wheel: Path
    wheelhouse: Path  # the wheel's dependencies as wheels
    venv: Path

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name


def _sources() -> list[Path]:
    files = [REPO / name for name in BUILD_FILES]
    for package in PACKAGES:
        for path in (REPO / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                if not path.name.startswith("."):  # editors' and atomic writers' temp files
                    files.append(path)
    return sorted(files)


def source_key() -> str:
    """A digest of every file the wheel is built from (names and contents)."""
    digest = hashlib.sha256(sys.version.encode())
    for path in _sources():
        digest.update(str(path.relative_to(REPO)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def _run(*argv: str | Path) -> None:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=BUILD_TIMEOUT
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed:\n{done.stdout}{done.stderr}")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two pytest runs on one machine build one install, not two half ones.
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(home: Path) -> None:
    src, dist, wheelhouse = home / "src", home / "dist", home / "wheelhouse"
    for path in _sources():
        target = src / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    pip = (sys.executable, "-m", "pip", "--quiet")
    # Built as from a fresh clone: in an isolated build environment, without extras.
    _run(*pip, "wheel", "--no-deps", "--wheel-dir", dist, src)
    [wheel] = dist.glob("hubcluster-*.whl")
    # The dependencies at the versions tested together, as the Ansible role installs them.
    constraints = ("--constraint", REPO / "constraints.txt")
    _run(*pip, "download", "--only-binary=:all:", *constraints, "--dest", wheelhouse, wheel)
    _run(sys.executable, "-m", "venv", home / "venv")
    _run(
        home / "venv" / "bin" / "python",
        *pip[1:],
        "install",
        "--no-index",
        "--find-links",
        wheelhouse,
        wheel,
    )


def plain_install() -> PlainInstall:
    """The plain install of the tree as it is now, built if not cached yet."""
    CACHE.mkdir(parents=True, exist_ok=True)
    key = source_key()
    home = CACHE / f"plain-{key}"
    with _locked(CACHE / f"plain-{key}.lock"):
        if not (home / "ready").exists():
            shutil.rmtree(home, ignore_errors=True)  # a build that was cut short
            _build(home)
        (home / "ready").touch()  # in use: not pruned
    _prune(keep=home)
    [wheel] = (home / "dist").glob("hubcluster-*.whl")
    return PlainInstall(wheel, home / "wheelhouse", home / "venv")


def _prune(keep: Path, unused_for: float = 3600.0) -> None:
    """Drop installs of older trees (about 100 MB each) nobody used for an hour."""
    for home in CACHE.glob("plain-*"):
        ready = home / "ready"
        if home == keep or not home.is_dir():
            continue
        stamp = ready if ready.exists() else home
        if time.time() - stamp.stat().st_mtime > unused_for:
            shutil.rmtree(home, ignore_errors=True)
            (CACHE / f"{home.name}.lock").unlink(missing_ok=True)
