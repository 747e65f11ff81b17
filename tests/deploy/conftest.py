"""The hubs the playbook deploys get the plain install (tests/install): the same wheel."""

from __future__ import annotations

import pytest

from tests.deploy import early
from tests.deploy.deployment import Deployment
from tests.install.plain_install import PlainInstall, plain_install


@pytest.fixture(scope="session")
def plain() -> PlainInstall:
    return plain_install()


@pytest.fixture(scope="package")
def deployed() -> Deployment:
    """The staged deployment (tests/deploy/early.py), once for every test that reads it."""
    return early.deployment(timeout=2400)
