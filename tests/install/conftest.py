"""The plain install (tests/install/plain_install.py), once per test session."""

from __future__ import annotations

import pytest

from tests.install.plain_install import PlainInstall, plain_install


@pytest.fixture(scope="session")
def plain() -> PlainInstall:
    return plain_install()
