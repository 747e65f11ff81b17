"""Layers that point one way, and one definition of what the hubs share."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_packages(package: str) -> dict[str, set[str]]:
    """Each module of `package` -> the top-level packages it imports."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tops = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                tops |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                tops.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = tops
    return found


def test_hub_and_client_agent_do_not_import_each_other():
    crossing = [m for m, tops in imported_packages("hub").items() if "client_agent" in tops]
    crossing += [m for m, tops in imported_packages("client_agent").items() if "hub" in tops]
    assert crossing == []


def test_one_majority_write_concern():
    pattern = re.compile(r"WriteConcern\(\s*[\"']majority")
    defined = [
        str(path.relative_to(ROOT))
        for package in ("hub", "hubcluster", "hubctl", "client_agent")
        for path in (ROOT / package).rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert defined == ["hub/mongo.py"]
