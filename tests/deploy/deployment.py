"""The staged deployment the tests of tests/deploy read back: hosts, paths, both runs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.playbook import (
    ANSIBLE_DIR,
    run_playbook,
    wheel_version,
    write_inventory,
)
from tests.install.plain_install import PlainInstall

HUBS = {"hub1": "10.0.0.1", "hub2": "10.0.0.2", "hub3": "10.0.0.3"}
CLIENTS = {"client1": "10.0.1.1", "client2": "10.0.1.2"}
CONFIG = "/etc/hubcluster/hub.toml"
AGENT_CONFIG = "/etc/hubcluster/agent.toml"
VENV = "/opt/hubcluster/venv"
PORTAL_PASSWORD = "correct horse battery staple"
DB_USERS = ("hubcluster-admin", "hubd", "operator", "reader")


@dataclass
class Deployment:
    base: Path
    secrets: Path
    first: str
    second: str

    def root(self, host: str) -> Path:
        return self.base / host

    def file(self, host: str, path: str) -> Path:
        return self.root(host) / path.lstrip("/")


def deploy(base: Path, plain: PlainInstall, environ: Mapping[str, str] | None = None) -> Deployment:
    """Three hubs and two clients staged under `base`; site.yml run twice, in `environ`
    (default: this process's environment as it is at each run)."""
    secrets = base / "secrets"
    hubs = {
        name: {
            "hubcluster_address": ip,
            "hubcluster_root": str(base / name),
            "hubcluster_install_venv": True,
        }
        for name, ip in HUBS.items()
    }
    hubs["hub1"]["hub_nrpe"] = True
    hubs["hub1"]["hub_prometheus_rules_dir"] = "/etc/prometheus/rules"
    hashed = subprocess.run(
        [str(plain.bin("hubd")), "hash-password"],
        input=f"{PORTAL_PASSWORD}\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=None if environ is None else dict(environ),
    )
    hubs["hub2"].update(
        hub_portal_enabled=True,
        hub_portal_bind="0.0.0.0",
        hub_portal_tls_cert="/etc/hubcluster/portal.crt",
        hub_portal_tls_key="/etc/hubcluster/portal.key",
        hub_portal_users=[
            {"name": "alice", "role": "admin", "password_hash": hashed.stdout.strip()}
        ],
    )
    clients = {
        name: {"hubcluster_address": ip, "hubcluster_root": str(base / name)}
        for name, ip in CLIENTS.items()
    }
    clients["client2"]["client_hostname"] = "client2.example.com"
    inventory = write_inventory(
        base / "inventory.json",
        hubs,
        clients,
        {
            "hubcluster_install_packages": False,
            "hubcluster_manage_services": False,
            "hubcluster_secrets_dir": str(secrets),
            # The wheel tests/install built, and its dependencies, offline; bytecode is
            # compiled on first import instead, which keeps three installs cheap.
            "hubcluster_wheel": str(plain.wheel),
            "hubcluster_version": wheel_version(plain.wheel),
            "hubcluster_pip_extra_args": (
                f"--no-index --find-links {plain.wheelhouse} --no-compile"
            ),
            "hubcluster_python": sys.executable,
        },
    )
    # --diff -v: if a secret were not under no_log, its content would show in this output.
    home = base / "home"
    site = ANSIBLE_DIR / "site.yml"
    first = run_playbook(site, inventory, home, "--diff", "-v", timeout=1100, environ=environ)
    second = run_playbook(site, inventory, home, "--diff", "-v", timeout=1100, environ=environ)
    return Deployment(base, secrets, first, second)
