"""The replset role run for real against the wire-level stand-in, with the plain install's
hubctl: it initiates once, from the first hub, creates the users, and a rerun changes nothing."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest

from tests.deploy.deployment import (
    DB_USERS,
)
from tests.deploy.playbook import (
    NEEDS_ANSIBLE,
    recap,
    run_playbook,
    task_results,
    write_inventory,
)

pytestmark = [
    NEEDS_ANSIBLE,
    pytest.mark.timeout(600),
]


def test_replset_role_initiates_once_and_creates_the_users(tmp_path, plain):
    from hub.mongo import access_as, connect
    from hub.mongo_access import MongoAccess, read_password_file
    from hub.replset import ReplicaSet
    from hubctl.lab.standin import StandinCluster

    playbook = tmp_path / "replset.yml"
    playbook.write_text(
        # Hosts in reverse order: whichever hub Ansible reaches first, the first hub (hub1)
        # initiates, with its own paths.
        "- name: Replica set\n  hosts: hubs\n  order: reverse_inventory\n"
        "  gather_facts: false\n  roles:\n    - role: replset\n"
    )
    secrets = tmp_path / "secrets"
    # mongod as production runs it: access control and requireTLS, no user yet.
    with StandinCluster(election_timeout=0.5) as cluster:
        hubs = {}
        for index, member in enumerate(cluster.hosts, start=1):
            host, port = member.rsplit(":", 1)
            etc = tmp_path / f"hub{index}" / "etc"
            hubs[f"hub{index}"] = {
                "hubcluster_address": host,
                "hubcluster_mongodb_port": int(port),
                "hubcluster_config_dir": str(etc),
                "hubcluster_hubctl": str(tmp_path / f"hub{index}" / "bin" / "hubctl"),
            }
        hubs["hub1"]["replset_priority"] = 2
        inventory = write_inventory(
            tmp_path / "inventory.json",
            hubs,
            {},
            {
                "hubcluster_install_packages": False,
                "hubcluster_manage_services": False,
                "hubcluster_secrets_dir": str(secrets),
                "hubcluster_tls_ca_file": str(cluster.ca_file),
                "hubcluster_venv": str(plain.venv),  # a hub's hubctl: the plain install
                "replset_initiate": True,
                "replset_election_timeout": "500ms",
                "replset_timeout": 30,
            },
        )
        first = run_playbook(playbook, inventory, tmp_path / "home", "-v")
        assert "CFEngineNova: initiated" in first
        assert "user hubd created" in first and "user operator created" in first
        # Once, on the first hub (run_once), and changed because it initiated.
        assert sorted(task_results(first, "replset : Initiate")) == [
            "changed: [hub1]",
            "skipping: [hub2]",
            "skipping: [hub3]",
        ]
        users_dirs = [hub for hub in hubs if (tmp_path / hub / "etc" / "db-users").exists()]
        assert users_dirs == ["hub1"]
        second = run_playbook(playbook, inventory, tmp_path / "home", "-v")
        assert "CFEngineNova: already initiated" in second
        assert "ok: [hub1]" in task_results(second, "replset : Initiate")
        assert all(counts["changed"] == 0 for counts in recap(second).values())
        passwords = {u: read_password_file(secrets / "db-users" / u) for u in DB_USERS}
        for output in (first, second):
            assert not any(password in output for password in passwords.values())

        def access(user: str) -> MongoAccess:
            return MongoAccess(user, passwords[user], tls_ca_file=cluster.ca_file)

        for user in ("hubd", "reader"):  # each logs in with the password the play gave it
            with access_as(access(user)), connect(cluster.uri, timeout=10) as client:
                assert client["cfreport"].command("ping")["ok"] == 1
        with access_as(access("operator")):
            rs = ReplicaSet(cluster.uri)
            try:
                topology = rs.topology()
            finally:
                rs.close()
        assert topology.set_name == "CFEngineNova"
        assert sorted(m.name for m in topology.members) == sorted(cluster.hosts)
        priorities = {m.name: m.priority for m in topology.members}
        names = {m.name: m.hub for m in topology.members}
        assert names == {h: f"hub{i}" for i, h in enumerate(cluster.hosts, start=1)}
        assert priorities[cluster.hosts[0]] == 2
        assert priorities[cluster.hosts[1]] == priorities[cluster.hosts[2]] == 1
        # Each hub's hubctl wrapper is the operator, from files, with no argument given.
        for hub, values in hubs.items():
            done = subprocess.run(
                [values["hubcluster_hubctl"], "status", "--json", "--mongo", cluster.uri],
                capture_output=True,
                text=True,
                env={"PATH": "/usr/bin:/bin", "COLUMNS": "80"},
                timeout=60,
            )
            assert json.loads(done.stdout)["primary"] in cluster.hosts, (hub, done.stderr)
            hubd_password = Path(values["hubcluster_config_dir"]) / "mongo-hubd.password"
            assert hubd_password.read_text().strip() == passwords["hubd"]
            assert stat.S_IMODE(hubd_password.stat().st_mode) == 0o600
