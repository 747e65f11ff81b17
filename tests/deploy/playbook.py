"""Running the shipped playbooks for real from tests: environment, inventory, results."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"


def tool(name: str) -> str | None:
    """A console script of this venv (even when it is not on PATH), else one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


PLAYBOOK = tool("ansible-playbook")
LINT = tool("ansible-lint")
NEEDS_ANSIBLE = pytest.mark.skipif(
    PLAYBOOK is None,
    reason="ansible-playbook is not installed; pip install -e '.[deploy]' to run these",
)


def ansible_env(home: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Ansible's environment: `environ` (default: this process's) and its settings."""
    # The play brings its own database identities (files it writes); the test session's
    # operator (HUBCLUSTER_MONGO_*, tests/conftest.py) must not leak into what it runs.
    base = os.environ if environ is None else environ
    env = {k: v for k, v in base.items() if not k.startswith("HUBCLUSTER_MONGO_")}
    env.update(
        ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
        ANSIBLE_HOME=str(home),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_PIPELINING="1",
        ANSIBLE_FORKS="8",
        ANSIBLE_GATHERING="explicit",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def write_inventory(path: Path, hubs: dict, clients: dict, common: dict) -> Path:
    """A YAML (here: JSON) inventory; `hubs`/`clients` map host name -> host variables."""
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_become": False,
                "ansible_python_interpreter": sys.executable,
                **common,
            },
            "children": {"hubs": {"hosts": hubs}, "clients": {"hosts": clients}},
        }
    }
    path.write_text(json.dumps(inventory, indent=2))
    return path


def attempt_playbook(
    playbook: Path | str,
    inventory: Path,
    home: Path,
    *args: str,
    timeout: float = 600,
    environ: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """Run a playbook of ansible/; its exit code and its whole output."""
    result = subprocess.run(
        [PLAYBOOK, "-i", str(inventory), str(playbook), *args],
        cwd=ANSIBLE_DIR,
        env=ansible_env(home, environ),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result.returncode, result.stdout + result.stderr


def run_playbook(
    playbook: Path | str,
    inventory: Path,
    home: Path,
    *args: str,
    timeout: float = 600,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Run a playbook that must succeed; its output."""
    code, output = attempt_playbook(
        playbook, inventory, home, *args, timeout=timeout, environ=environ
    )
    assert code == 0, output[-6000:]
    return output


RECAP_LINE = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$")


def recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP counters per host."""
    tail = output[output.rindex("PLAY RECAP") :]
    counts = {}
    for line in tail.splitlines()[1:]:
        match = RECAP_LINE.match(line.strip())
        if match:
            pairs = (item.split("=") for item in match.group(2).split())
            counts[match.group(1)] = {key: int(value) for key, value in pairs}
    return counts


def task_results(output: str, task: str) -> list[str]:
    """The per-host result lines (`ok: [...]`, `changed: [...]`) of the task named `task`."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"TASK [{task}"))
    results = []
    for line in lines[start + 1 :]:
        if line.startswith(("TASK [", "RUNNING HANDLER [", "PLAY RECAP")):
            break
        if re.match(r"^(ok|changed|skipping|failed|fatal): \[", line):
            results.append(line.split(" => ")[0].strip())
    return results


def wheel_version(wheel: Path) -> str:
    """The version in a wheel's file name (hubcluster-0.1.0-py3-none-any.whl)."""
    return wheel.name.split("-")[1]
