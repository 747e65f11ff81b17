"""Nothing outside hubctl/lab imports the stand-in's mockupdb or mongomock, even indirectly.

Each check runs in a fresh interpreter whose import system refuses those two modules, as
a plain install (no `lab` extra) would, so an import anywhere on the way fails the test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("hubcluster", "hub", "hubctl", "client_agent")

REFUSE_LAB_MODULES = """
import sys

class RefuseLabModules:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("mockupdb", "mongomock"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None

sys.meta_path.insert(0, RefuseLabModules())
"""


def outside_the_lab() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[:2] == ("hubctl", "lab") or path.name.startswith("."):
                continue
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", REFUSE_LAB_MODULES + code, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )


def test_every_module_outside_the_lab_imports_without_the_lab_extra():
    modules = outside_the_lab()
    assert "hubctl.app" in modules and "hub.daemon" in modules and "client_agent.cli" in modules
    done = python(
        "import importlib\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
        "assert 'hubctl.lab' not in sys.modules, 'the lab was imported'\n",
        *modules,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def hubctl(*args: str) -> subprocess.CompletedProcess:
    return python("from hubctl.app import main\nsys.argv[0] = 'hubctl'\nmain()", *args)


def test_hubctl_help_of_every_command_without_the_lab_extra():
    for args in (
        ["--help"],
        ["status", "--help"],
        ["check", "--help"],
        ["query", "hosts", "--help"],
        ["maintenance", "start", "--help"],
        ["masterfiles", "--help"],
    ):
        done = hubctl(*args)
        assert done.returncode == 0 and done.stdout.startswith("Usage: hubctl"), (args, done)
    listing = hubctl("--help").stdout
    assert "lab " in listing  # listed, though not imported


def test_hubctl_lab_without_the_extra_is_one_line_exit_2():
    done = hubctl("lab", "up", "--clients", "3")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "error: hubctl lab needs the lab extra: pip install 'hubcluster[lab]'\n"
