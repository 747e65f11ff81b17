"""[remediation] in the hub config: a mistake is one line naming the key and the problem,
at hubd's start, before anything runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hub.config import load_hub_config
from hubcluster.config_check import ConfigError
from hubctl.lab.child_commands import HUBD

BASE = """
[hub]
name = "hub1"
workdir = "{workdir}"

[replset]
uri = "mongodb://127.0.0.1:1"

[[hubs]]
name = "hub1"
mongo = "127.0.0.1:1"
service = "127.0.0.1:2"
"""

GOOD = """
[remediation]
max_concurrent = 2
[remediation.commands]
restart-agent = ["/usr/bin/systemctl", "restart", "hubcluster-agent-serve"]

[[remediation.rules]]
name = "sshd"
trigger = "promise_not_kept"
promise = "sshd_running"
action = "run_agent"
classes = ["remediate_sshd"]

[[remediation.rules]]
name = "serve-down"
trigger = "stale_client"
stale_after = "30m"
action = "command"
command = "restart-agent"
dry_run = true
"""


def _write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(BASE.format(workdir=tmp_path) + extra)
    return path


def test_a_good_config_gives_rules_and_limits(tmp_path):
    settings = load_hub_config(_write(tmp_path, GOOD)).remediation
    assert settings.max_concurrent == 2
    sshd, serve = settings.rules
    assert (sshd.classes, sshd.max_runs, sshd.window, sshd.cooldown) == (
        ("remediate_sshd",),
        3,
        3600.0,
        600.0,
    )
    assert (serve.stale_after, serve.dry_run, serve.command) == (1800.0, True, "restart-agent")


def test_hold_and_action_timeout_default_to_the_rounds_and_the_section(tmp_path):
    extra = GOOD.replace("dry_run = true", 'dry_run = true\nhold = "90s"\naction_timeout = "1m"')
    config = load_hub_config(_write(tmp_path, extra))
    settings = config.remediation.resolved(config.collector.interval)
    sshd, serve = settings.rules
    # No hold given: two collection intervals (5m each by default); the section's timeout.
    assert (sshd.hold, sshd.action_timeout) == (600.0, 300.0)
    assert (serve.hold, serve.action_timeout) == (90.0, 60.0)
    assert settings.timeout_of("serve-down") == 60.0
    assert settings.timeout_of("gone-from-the-config") == 300.0


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ('trigger = "bogus"\naction = "run_agent"', "remediation.rules[0].trigger: must be one of"),
        (
            'trigger = "masterfiles_diverged"\naction = "run_agent"',
            "remediation.rules[0].action: run_agent does not fit trigger masterfiles_diverged",
        ),
        (
            'trigger = "check"\naction = "command"\ncheck = "member down"\ncommand = "rm-rf"',
            "remediation.rules[0].command: 'rm-rf' is not in [remediation.commands]",
        ),
        (
            'trigger = "promise_not_kept"\naction = "run_agent"\nclasses = ["a b"]',
            "remediation.rules[0].classes: 'a b' is not a class name",
        ),
        (
            'trigger = "promise_not_kept"\naction = "run_agent"\nbreaker_percent = 0',
            "remediation.rules[0].breaker_percent: must be a number above 0",
        ),
        (
            'trigger = "promise_not_kept"\naction = "run_agent"\nmax_runs = 0',
            "remediation.rules[0].max_runs: must be between 1 and 1000",
        ),
        ('trigger = "promise_not_kept"\naction = "run_agent"\nwindw = "1h"', "windw: unknown key"),
        (
            'trigger = "promise_not_kept"\naction = "run_agent"\naction_timeout = "2h"',
            "remediation.rules[0].action_timeout: must be at most 1h",
        ),
        (
            'trigger = "promise_not_kept"\naction = "run_agent"\nhold = "-1s"',
            "remediation.rules[0].hold:",
        ),
    ],
)
def test_a_bad_rule_is_one_line_naming_it(tmp_path, rule, says):
    path = _write(tmp_path, f'[[remediation.rules]]\nname = "r"\n{rule}\n')
    with pytest.raises(ConfigError) as caught:
        load_hub_config(path)
    assert says in str(caught.value)


def test_hubd_refuses_a_bad_rule_in_one_line(tmp_path):
    path = _write(tmp_path, '[[remediation.rules]]\nname = "r"\ntrigger = "bogus"\n')
    done = subprocess.run(
        HUBD + ["run", "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "remediation.rules[0].trigger: must be one of promise_not_kept" in lines[0]
