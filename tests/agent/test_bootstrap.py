"""`client-agent bootstrap` against real hub services: pinning, registration, first policy."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from client_agent.bootstrap import BootstrapError, bootstrap
from client_agent.cli import app
from client_agent.state import ClientState
from hubcluster.keys import key_sha
from tests.sshsvc.harness import client_config


def test_bootstrap_pins_registers_and_fetches_the_policy(make_hubs, tmp_path):
    hubs = make_hubs(count=2)
    hubs.master = 1
    rid = hubs.publish({"lib/x.txt": "x"})
    config = client_config(tmp_path)

    result = asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))

    state = ClientState(config.workdir)
    assert result.new_key and result.release == rid and not result.problems
    assert state.pinned_hub_key().public_data == hubs.hub_key.public_data
    assert state.read_policy_server() == (hubs.addresses[1], None)  # the master, not hub0
    hub_list, _ = state.read_hubs()
    assert hub_list.hubs == hubs.addresses
    assert state.current_release() == rid
    assert (state.inputs / "lib" / "x.txt").read_text() == "x"
    [record] = hubs.registered
    client_sha = key_sha(state.client_key())
    assert (record.sha, record.hostname, record.report_port) == (client_sha, "client1", 5309)
    assert hubs.keystore(0).is_known(client_sha)
    assert "bootstrapped to" in result.summary()


def test_bootstrap_refused_outside_trust_keys_from(make_hubs, tmp_path):
    hubs = make_hubs(trust=("10.0.0.0/8",))
    config = client_config(tmp_path)
    with pytest.raises(BootstrapError) as caught:
        asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))
    assert caught.value.exit_code == 1
    message = str(caught.value)
    assert "registration refused" in message
    assert "trust_keys_from does not include your address 127.0.0.1" in message
    state = ClientState(config.workdir)
    assert state.pinned_hub_key() is None and not state.policy_server_path.exists()
    assert hubs.keystore().keys() == {}


def test_wrong_hub_key_is_refused_naming_both_fingerprints(make_hubs, tmp_path):
    real = make_hubs(name="real")
    mitm = make_hubs(name="mitm")  # a second hub key pair, answering where the client dials
    config = client_config(tmp_path)
    with pytest.raises(BootstrapError) as caught:
        asyncio.run(bootstrap(config, mitm.addresses[0], hub_fingerprint=real.fingerprint))
    message = str(caught.value)
    assert caught.value.exit_code == 1
    assert mitm.fingerprint in message and real.fingerprint in message and "REFUSING" in message
    assert mitm.registered == [] and mitm.keystore().keys() == {}
    assert not ClientState(config.workdir).hub_key_path.exists()


def test_trust_on_first_use_pins_and_then_refuses_another_key(make_hubs, tmp_path):
    real = make_hubs(name="real")
    mitm = make_hubs(name="mitm")
    config = client_config(tmp_path)
    result = asyncio.run(bootstrap(config, real.addresses[0], trust_on_first_use=True))
    assert result.hub_fingerprint == real.fingerprint
    with pytest.raises(BootstrapError) as caught:
        asyncio.run(bootstrap(config, mitm.addresses[0], trust_on_first_use=True))
    assert real.fingerprint in str(caught.value) and mitm.fingerprint in str(caught.value)
    # Bootstrapping again to the same hub is harmless: same key, not new.
    again = asyncio.run(bootstrap(config, real.addresses[0], trust_on_first_use=True))
    assert again.new_key is False


def test_bootstrap_usage_errors(tmp_path):
    config = client_config(tmp_path)
    for kwargs in ({}, {"hub_fingerprint": "SHA256:x", "trust_on_first_use": True}):
        with pytest.raises(BootstrapError, match="exactly one") as caught:
            asyncio.run(bootstrap(config, "127.0.0.1:1", **kwargs))
        assert caught.value.exit_code == 2
    with pytest.raises(BootstrapError, match="not a SHA256 fingerprint"):
        asyncio.run(bootstrap(config, "127.0.0.1:1", hub_fingerprint="nope!"))
    with pytest.raises(BootstrapError, match="connection refused") as caught:
        asyncio.run(bootstrap(config, "127.0.0.1:1", trust_on_first_use=True))
    assert caught.value.exit_code == 3


def test_cli_bootstrap_success_and_refusal(make_hubs, tmp_path):
    hubs = make_hubs()
    hubs.publish({"a.txt": "a"})
    runner = CliRunner()
    ok = runner.invoke(
        app,
        [
            "bootstrap",
            hubs.addresses[0],
            "--workdir",
            str(tmp_path / "c1"),
            "--hub-fingerprint",
            hubs.fingerprint,
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "bootstrapped to" in ok.output

    closed = make_hubs(trust=("10.0.0.0/8",), name="closed")
    refused = runner.invoke(
        app,
        ["bootstrap", closed.addresses[0], "--workdir", str(tmp_path / "c2")]
        + ["--trust-on-first-use"],
    )
    assert refused.exit_code == 1
    assert "client-agent: error: registration refused" in refused.output
    assert "trust_keys_from" in refused.output and "Traceback" not in refused.output


def test_cli_reports_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "agent.toml"
    bad.write_text('[agent]\nconnect_timeout = "soon"\n')
    result = CliRunner().invoke(app, ["run", "--config", str(bad)])
    assert result.exit_code == 2
    assert "agent.connect_timeout" in result.output and "Traceback" not in result.output
    unknown = tmp_path / "typo.toml"
    unknown.write_text("[agent]\nworkdri = '/x'\n")
    result = CliRunner().invoke(app, ["run", "--config", str(unknown)])
    assert result.exit_code == 2 and "agent.workdri: unknown key" in result.output
