"""The hubs the playbook deploys get the plain install (tests/install): the same wheel."""

from __future__ import annotations

import pytest

from tests.deploy.deployment import Deployment, deploy
from tests.install.plain_install import PlainInstall, plain_install


@pytest.fixture(scope="session")
def plain() -> PlainInstall:
    return plain_install()


@pytest.fixture(scope="package")
def deployed(tmp_path_factory: pytest.TempPathFactory, plain: PlainInstall) -> Deployment:
    """The staged deployment, once for every test of tests/deploy that reads it."""
    return deploy(tmp_path_factory.mktemp("deploy"), plain)
