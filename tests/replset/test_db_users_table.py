"""The README's table of database users is the one hub.db_roles defines: it cannot drift."""

from __future__ import annotations

from pathlib import Path

from hub.db_roles import HUBD_ROLE, OPERATOR_ROLE, users_table

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_table() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Database users\n", 1)[1].split("\n#", 1)[0]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_the_readme_lists_exactly_the_users_roles_and_actions_defined():
    assert readme_table() == users_table()


def test_the_table_says_what_hubd_may_not_do():
    rows = {row.split("|")[1].strip(" `"): row for row in users_table()[2:]}
    assert HUBD_ROLE in rows["hubd"] and OPERATOR_ROLE in rows["operator"]
    assert "replSetConfigure" not in rows["hubd"] and "replSetStateChange" not in rows["hubd"]
    assert "replSetConfigure" in rows["operator"] and "insert" not in rows["reader"]
