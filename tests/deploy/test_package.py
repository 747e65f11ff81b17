"""A package a distribution would accept (issue 19 s5): license, metadata, sdist, constraints.

The wheel is the one the hubs get (tests/install's plain install, built from this tree in an
isolated build); the sdist is built the same way from a copy of the tree.
"""

from __future__ import annotations

import email
import json
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "constraints.txt"


def tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def pins() -> dict[str, str]:
    found = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            found[canonicalize_name(name)] = version
    return found


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        texts += extra
    reqs = [Requirement(t) for t in texts]
    return [r for r in reqs if canonicalize_name(r.name) != "hubcluster"]


def wheel_metadata(wheel: Path) -> tuple[email.message.Message, zipfile.ZipFile]:
    archive = zipfile.ZipFile(wheel)
    [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    return email.message_from_bytes(archive.read(name)), archive


def test_constraints_pin_every_requirement_inside_its_range():
    pinned = pins()
    for req in project_requirements():
        name = canonicalize_name(req.name)
        assert name in pinned, f"constraints.txt does not pin {req.name}"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {name}=={pinned[name]}, outside pyproject's {req}"
        )


def test_hubs_get_the_pinned_versions(plain):
    # The plain install is what the Ansible role puts on a hub (same wheel, same wheelhouse).
    listing = subprocess.run(
        [str(plain.venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    pinned = pins()
    installed = dict(line.split("==", 1) for line in listing.splitlines() if "==" in line)
    checked = 0
    for name, version in installed.items():
        key = canonicalize_name(name)
        if key in ("hubcluster", "pip", "setuptools", "wheel"):
            continue
        assert pinned.get(key) == version, f"{name}=={version} installed, constraints say {key}"
        checked += 1
    assert checked >= 5  # pymongo, asyncssh, typer, rich, starlette and theirs


def test_wheel_carries_license_and_metadata(plain):
    meta, archive = wheel_metadata(plain.wheel)
    assert meta["License-Expression"] == "Apache-2.0"
    [license_file] = [n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
    assert archive.read(license_file) == (REPO / "LICENSE").read_bytes()
    assert b"Apache License\n                           Version 2.0" in archive.read(license_file)
    classifiers = meta.get_all("Classifier") or []
    assert any(c.startswith("Development Status ::") for c in classifiers)
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert meta["Keywords"] and meta["Author-email"]
    # Every runtime dependency stops below a major release nobody has tested.
    for text in meta.get_all("Requires-Dist") or []:
        req = Requirement(text)
        if req.marker is None:
            assert any(s.operator == "<" for s in req.specifier), f"{req} has no upper bound"


@pytest.mark.skipif(tool("check-wheel-contents") is None, reason="check-wheel-contents missing")
def test_wheel_passes_check_wheel_contents(plain):
    # Run from the repository: its [tool.check-wheel-contents] says which check is waived.
    done = subprocess.run(
        [tool("check-wheel-contents"), str(plain.wheel)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _ignore(directory: str, names: list[str]) -> set[str]:
    junk = {".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
    junk |= {".hypothesis", "node_modules", "build", "dist"}
    return {n for n in names if n in junk or n.endswith((".egg-info", ".pyc"))}


@pytest.mark.skipif(tool("pyproject-build") is None, reason="build is missing (the test extra)")
@pytest.mark.timeout(300)
def test_sdist_ships_what_a_packager_needs(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=_ignore)
    subprocess.run(
        [tool("pyproject-build"), "--sdist", "--outdir", str(tmp_path / "dist"), str(src)],
        capture_output=True,
        text=True,
        timeout=280,
        check=True,
    )
    [sdist] = (tmp_path / "dist").glob("hubcluster-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    for needed in (
        "LICENSE",
        "README.md",
        "constraints.txt",
        "ansible/site.yml",
        "ansible/roles/hub/templates/hubd.service.j2",
        "tests/conftest.py",
        "tests/deploy/test_package.py",
        "scripts/test",
        "scripts/venv.sh",
        "benchmarks/RESULTS.md",
    ):
        assert needed in names, f"the sdist lacks {needed}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


@pytest.mark.slow  # resolves some 70 packages against the index: about 20 s
def test_constraints_pin_everything_the_extras_resolve_to(plain, tmp_path):
    report = tmp_path / "report.json"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        + ["--report", str(report), "--constraint", str(CONSTRAINTS)]
        + [f"hubcluster[test,deploy] @ {plain.wheel.as_uri()}"],
        capture_output=True,
        text=True,
        timeout=280,
        check=True,
    )
    pinned = pins()
    resolved = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    resolved.pop("hubcluster")
    unpinned = sorted(set(resolved) - set(pinned))
    assert not unpinned, f"resolved but not in constraints.txt: {unpinned}"
    assert {n: v for n, v in resolved.items() if pinned[n] != v} == {}
