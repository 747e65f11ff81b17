"""The hubs the playbook deploys get the plain install (tests/install): the same wheel."""

from __future__ import annotations

import pytest

from tests.install.plain_install import PlainInstall, plain_install


@pytest.fixture(scope="session")
def plain() -> PlainInstall:
    return plain_install()
