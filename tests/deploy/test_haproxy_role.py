"""Issue 14: the optional haproxy role, run for real through site.yml on a staged balancer.

The rendered haproxy.cfg must be what `haproxy -c` accepts, front the three hubs with the
/read and /master checks, be the very text the lab renders from the same template, and not
exist at all unless haproxy_enabled is set.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hubctl.lab.haproxy import render_config
from tests.debian_tools import debian_tool
from tests.deploy.group_vars import commented_settings
from tests.deploy.playbook import ANSIBLE_DIR, NEEDS_ANSIBLE, run_playbook

pytestmark = [
    NEEDS_ANSIBLE,
    pytest.mark.timeout(300),
]

HUBS = {"hub1": "10.0.0.1", "hub2": "10.0.0.2", "hub3": "10.0.0.3"}
CONFIG = "etc/haproxy/haproxy.cfg"


def deploy_balancer(base: Path, **balancer: object) -> tuple[Path, str]:
    """site.yml limited to one staged balancer, lb1; returns its staging root and output."""
    root = base / "lb1"
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_become": False,
                "ansible_python_interpreter": sys.executable,
                "hubcluster_install_packages": False,
                "hubcluster_manage_services": False,
                "hubcluster_secrets_dir": str(base / "secrets"),
            },
            "children": {
                "hubs": {"hosts": {n: {"hubcluster_address": a} for n, a in HUBS.items()}},
                "portal_balancers": {"hosts": {"lb1": {"hubcluster_root": str(root), **balancer}}},
            },
        }
    }
    (base / "inventory.json").write_text(json.dumps(inventory))
    output = run_playbook(
        "site.yml", base / "inventory.json", base / "home", "--limit", "lb1", timeout=240
    )
    return root, output


def backend(config: str, name: str) -> str:
    return config.split(f"\nbackend {name}\n", 1)[1].split("\n\n", 1)[0]


def servers(config: str, name: str) -> list[str]:
    return re.findall(r"^\s+server (\S+ \S+) check", backend(config, name), re.MULTILINE)


@pytest.fixture(scope="module")
def enabled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The staged config of a balancer with the role on and one check setting changed."""
    root, _ = deploy_balancer(
        tmp_path_factory.mktemp("balancer"), haproxy_enabled=True, haproxy_check_inter="2s"
    )
    return root / CONFIG


def test_an_enabled_balancer_gets_a_config_haproxy_accepts(enabled):
    haproxy = debian_tool("haproxy", "haproxy", "HAProxy tier")
    staged = enabled
    config = staged.read_text()
    want = [f"{name} {address}:5380" for name, address in HUBS.items()]
    assert servers(config, "hubcluster_read") == want
    assert servers(config, "hubcluster_master") == want
    assert "option httpchk GET /read" in backend(config, "hubcluster_read")
    assert "option httpchk GET /master" in backend(config, "hubcluster_master")
    assert "bind 0.0.0.0:5381" in config and "bind 0.0.0.0:5382" in config
    checked = subprocess.run(
        [haproxy, "-c", "-f", str(staged)], capture_output=True, text=True, timeout=30
    )
    # chroot /var/lib/haproxy and user haproxy exist where the package is installed.
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_lab_renders_the_same_text_from_the_same_template(enabled):
    deployed = enabled.read_text().splitlines()
    backends = [(name, address, 5380) for name, address in HUBS.items()]
    lab = render_config(backends, 5381, 5382, "0.0.0.0", system=True, haproxy_check_inter="2s")
    # The first line is the ansible_managed comment; all else is the template's.
    assert lab.splitlines()[1:] == deployed[1:]
    assert "default-server inter 2s fastinter 250ms" in lab


def test_no_balancer_config_unless_enabled(tmp_path):
    root, output = deploy_balancer(tmp_path)
    assert not (root / CONFIG).exists()
    assert "Write haproxy.cfg" in output  # the play ran and skipped the role's tasks


def test_the_roles_settings_are_documented():
    defaults = yaml.safe_load(
        (ANSIBLE_DIR / "roles" / "haproxy" / "defaults" / "main.yml").read_text()
    )
    group_vars = (ANSIBLE_DIR / "group_vars" / "all.yml").read_text()
    documented = commented_settings(group_vars)
    readme = (ANSIBLE_DIR / "README.md").read_text()
    template = (ANSIBLE_DIR / "roles" / "haproxy" / "templates" / "haproxy.cfg.j2").read_text()
    knobs = set(re.findall(r"(haproxy_check_\w+) \| default", template))
    assert {"haproxy_check_inter", "haproxy_check_rise", "haproxy_check_fall"} <= knobs
    for key in [*defaults, *knobs]:
        if key.endswith("_json"):
            continue
        assert f"`{key}`" in readme, f"ansible/README.md does not document {key}"
        assert key in group_vars, f"group_vars/all.yml does not mention {key}"
        if key in documented:
            assert documented[key] == defaults[key], f"group_vars/all.yml disagrees on {key}"
