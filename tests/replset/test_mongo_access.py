"""Credentials for the database: password files only their owner reads, never a password
in an error or a log line."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.config import parse_hub_config
from hub.mongo import use_access
from hub.mongo_access import ENV_PASSWORD, ENV_PASSWORD_FILE, ENV_USER, redact_logs
from hubcluster.config_check import ConfigError
from hubctl.app import app

runner = CliRunner()
SECRET = "s3cr3t-pw"


@pytest.fixture(autouse=True)
def no_leftover_access() -> Iterator[None]:
    yield
    use_access(None)


def hub_config(replset: dict) -> dict:
    return {
        "hub": {"name": "hub1"},
        "replset": {"uri": "mongodb://127.0.0.1:1/?replicaSet=rs", **replset},
        "hubs": [{"name": "hub1", "mongo": "127.0.0.1:1", "service": "127.0.0.1:2"}],
    }


def password_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "mongo-password"
    path.write_text(SECRET + "\n")
    path.chmod(mode)
    return path


def test_a_password_file_others_can_read_is_refused_naming_it_and_its_mode(tmp_path):
    path = password_file(tmp_path, 0o644)
    with pytest.raises(ConfigError) as info:
        parse_hub_config(hub_config({"username": "hubd", "password_file": str(path)}))
    assert str(info.value) == (
        f"replset: password file {path} has mode 0644; it must be 0600 or stricter"
    )
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="has mode 0640"):
        parse_hub_config(hub_config({"username": "hubd", "password_file": str(path)}))
    path.chmod(0o400)
    access = parse_hub_config(
        hub_config({"username": "hubd", "password_file": str(path)})
    ).mongo_access
    assert access is not None and access.password == SECRET
    assert access.client_kwargs() == {
        "username": "hubd",
        "password": SECRET,
        "authSource": "admin",
        "authMechanism": "SCRAM-SHA-256",
    }
    assert SECRET not in repr(access)


def test_a_user_without_a_password_is_refused_and_the_environment_may_give_it(
    tmp_path, monkeypatch
):
    monkeypatch.delenv(ENV_PASSWORD, raising=False)
    with pytest.raises(ConfigError, match="user hubd has no password"):
        parse_hub_config(hub_config({"username": "hubd"}))
    monkeypatch.setenv(ENV_PASSWORD, SECRET)
    access = parse_hub_config(hub_config({"username": "hubd"})).mongo_access
    assert access is not None and access.password == SECRET


def test_hubctl_refuses_an_open_password_file_in_one_line(tmp_path):
    path = password_file(tmp_path, 0o644)
    env = {ENV_USER: "operator", ENV_PASSWORD_FILE: str(path), "HUBCTL_MONGO_URI": None}
    result = runner.invoke(app, ["status", "--mongo", "mongodb://127.0.0.1:1/"], env=env)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: environment: password file {path} has mode 0644; it must be 0600 or stricter\n"
    )


def test_a_password_in_a_uri_is_redacted_in_hubctl_and_config_errors():
    bad = f"mongodb://operator:{SECRET}@127.0.0.1:1/?replicaSet=rs&tls=maybe"
    result = runner.invoke(
        app, ["status", "--mongo", bad], env={ENV_USER: None, ENV_PASSWORD_FILE: None}
    )
    assert result.exit_code == 2
    assert SECRET not in result.output
    assert "mongodb://operator:****@127.0.0.1:1/" in result.stderr
    with pytest.raises(ConfigError) as info:
        parse_hub_config(hub_config({"uri": f"mongo://hubd:{SECRET}@h1:27017/"}))
    assert SECRET not in str(info.value) and "mongo://hubd:****@h1:27017/" in str(info.value)


def test_a_password_in_a_uri_is_redacted_in_log_lines():
    """As hubd sets up its logging: whoever logs a URI, the handler writes it redacted."""
    logger = logging.getLogger("test_mongo_access.redaction")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        redact_logs(logger)
        logger.warning("cannot reach %s", f"mongodb://hubd:{SECRET}@h1:27017,h2:27017/")
        logger.warning("plain %s", "mongodb://h1:27017/")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == (
        "cannot reach mongodb://hubd:****@h1:27017,h2:27017/\nplain mongodb://h1:27017/\n"
    )
