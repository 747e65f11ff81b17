"""One name per hub: the member's `hub` tag in the set's config, set by init-replset,
shown with the address, and accepted wherever a member is named."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hub.mongo import connect_member
from hubctl.app import app

runner = CliRunner()


def hubctl(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def config_tags(uri: str, member: str) -> dict[str, dict]:
    with connect_member(uri, member) as client:
        config = client.admin.command("replSetGetConfig")["config"]
    return {m["host"]: m["tags"] for m in config["members"]}


def test_plain_members_take_their_names_from_the_hub_config(standin, tmp_path):
    names = ["alpha", "beta", "gamma"]
    cfg = tmp_path / "hub.toml"
    entries = "".join(
        f'[[hubs]]\nname = "{n}"\nmongo = "{h}"\nservice = "127.0.0.1:{5308 + i}"\n'
        for i, (n, h) in enumerate(zip(names, standin.hosts, strict=True))
    )
    cfg.write_text(f'[hub]\nname = "alpha"\n[replset]\nuri = "{standin.uri}"\n{entries}')
    members = [arg for h in standin.hosts for arg in ("--member", h)]
    result = hubctl(
        "init-replset", *members, "--priority", "alpha=2", "--election-timeout", "500ms",
        "--config", str(cfg), "--create-users", str(standin.passwords_dir),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert config_tags(standin.uri, standin.hosts[0]) == {
        h: {"hub": n} for n, h in zip(names, standin.hosts, strict=True)
    }
    doc = json.loads(hubctl("status", "--json", "--config", str(cfg)).stdout)
    by_hub = {m["hub"]: m for m in doc["members"]}
    assert by_hub["alpha"]["priority"] == 2 and by_hub["alpha"]["state"] == "PRIMARY"
    window = hubctl("maintenance", "start", "gamma", "--for", "1h", "--config", str(cfg))
    assert window.exit_code == 0, window.output
    assert f"gamma ({standin.hosts[2]}) is not primary" in window.stdout
    assert hubctl("maintenance", "end", "--config", str(cfg)).exit_code == 0


def test_members_without_a_name_have_no_tag(standin):
    members = [arg for h in standin.hosts for arg in ("--member", h)]
    users = ("--create-users", str(standin.passwords_dir))
    result = hubctl("init-replset", *members, "--election-timeout", "500ms", *users)
    assert result.exit_code == 0, result.output
    assert all(tags == {} for tags in config_tags(standin.uri, standin.hosts[0]).values())
    doc = json.loads(hubctl("status", "--json", "--mongo", standin.uri).stdout)
    assert [m["hub"] for m in doc["members"]] == [None] * 3


@pytest.mark.parametrize(
    "member, message",
    [
        ("=127.0.0.1:1", "expected HUB=HOST:PORT or HOST:PORT"),
        ("a:1=127.0.0.1:1", "expected HUB=HOST:PORT or HOST:PORT"),
        ("hub1=nohost", "has no port"),
    ],
)
def test_bad_member_forms_are_one_line(member, message):
    result = hubctl("init-replset", "--member", member, "--mongo", "mongodb://127.0.0.1:1/")
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_one_name_for_two_members_is_refused():
    result = hubctl(
        "init-replset", "--member", "hub1=127.0.0.1:1", "--member", "hub1=127.0.0.1:2",
        "--mongo", "mongodb://127.0.0.1:1/",
    )  # fmt: skip
    assert result.exit_code == 2 and "hub name hub1 given to more than one member" in result.stderr
