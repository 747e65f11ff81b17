"""The client's TOML config and its defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from client_agent.config import AgentConfig, load_agent_config, resolve_config
from hubcluster.config_check import ConfigError


def test_full_config(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(
        """
[agent]
workdir = "/srv/agent"
hostname = "web1"
connect_timeout = "1.5s"
run_interval = "10m"

[serve]
listen = "10.0.0.5:6000"
run_via = "systemd"

[spool]
max_bytes = 65536
"""
    )
    config = load_agent_config(path)
    assert config == AgentConfig(
        Path("/srv/agent"), "web1", 1.5, 600.0, "10.0.0.5:6000", 65536, run_via="systemd"
    )
    assert config.report_port == 6000 and config.host_name == "web1"


def test_workdir_alone_gives_defaults(tmp_path):
    config = resolve_config(None, tmp_path)
    assert config.workdir == tmp_path and config.connect_timeout == 3.0
    assert config.listen == "0.0.0.0:5309" and config.run_interval == 300.0
    assert config.run_via == "spawn"  # the lab's: service and agent are one user there
    assert config.host_name  # this host's own name


@pytest.mark.parametrize(
    "text, problem",
    [
        ("[agent]\nconnect_timeout = 'soon'\n", "agent.connect_timeout: not a duration"),
        ("[serve]\nlisten = 'nowhere'\n", "serve.listen: 'nowhere' has no port"),
        ("[spool]\nmax_bytes = 10\n", "spool.max_bytes: must be >= 4096"),
        ("[serve]\nrun_via = 'sudo'\n", "serve.run_via: expected spawn or systemd, got 'sudo'"),
        ("[agent]\nworkdri = '/x'\n", "agent.workdri: unknown key"),
        ("[agent\n", "invalid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, problem):
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_agent_config(path)


def test_config_and_workdir_exclusive(tmp_path):
    with pytest.raises(ConfigError, match="not both"):
        resolve_config(tmp_path / "a.toml", tmp_path)
