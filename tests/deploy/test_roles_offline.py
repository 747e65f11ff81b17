"""The roles read without a deployment: syntax, lint, documented defaults, templates,
no secrets in the tree, and a wrong wheel version refused before anything is installed."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.deploy.deployment import (
    HUBS,
)
from tests.deploy.group_vars import commented_settings
from tests.deploy.playbook import (
    ANSIBLE_DIR,
    LINT,
    NEEDS_ANSIBLE,
    PLAYBOOK,
    ansible_env,
    attempt_playbook,
    wheel_version,
    write_inventory,
)

ROLES = ("hubcluster", "mongodb_member", "hub", "replset", "client")

DERIVED = (
    "hubcluster_hubs",
    "hubcluster_client_addresses",
    "hubcluster_db_users",
    "hubcluster_me",
    "hubcluster_set_uri",
    "hubcluster_installs_here",
    "replset_on_first_hub",
)


pytestmark = [
    NEEDS_ANSIBLE,
]


def test_syntax_check(tmp_path):
    result = subprocess.run(
        [PLAYBOOK, "--syntax-check", "-i", "inventory.example.ini", "site.yml"],
        cwd=ANSIBLE_DIR,
        env=ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(LINT is None, reason="ansible-lint is not installed (the deploy extra)")
def test_ansible_lint_production_profile_is_clean(tmp_path):
    env = ansible_env(tmp_path)
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    result = subprocess.run(
        [LINT, "--nocolor"],
        cwd=ANSIBLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "Profile 'production' was required, and it passed" in output


def test_group_vars_and_readme_document_every_role_default():
    import yaml

    documented = commented_settings((ANSIBLE_DIR / "group_vars" / "all.yml").read_text())
    readme = (ANSIBLE_DIR / "README.md").read_text()
    for role in ROLES:
        defaults = yaml.safe_load(
            (ANSIBLE_DIR / "roles" / role / "defaults" / "main.yml").read_text()
        )
        for key, value in defaults.items():
            if key.endswith("_json") or key in DERIVED:
                continue  # derived, not settings
            assert f"`{key}`" in readme, f"README.md does not document {key}"
            if key in documented:
                assert documented[key] == value, f"group_vars/all.yml disagrees on {key}"
            else:
                assert f"{key} " in (ANSIBLE_DIR / "group_vars" / "all.yml").read_text(), (
                    f"group_vars/all.yml does not mention {key}"
                )


def test_no_secret_material_in_the_ansible_tree():
    for path in ANSIBLE_DIR.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert "PRIVATE KEY-----" not in text, path


def test_a_wheel_of_another_version_stops_the_play_with_one_message(tmp_path, plain):
    hubs = {
        name: {"hubcluster_address": ip, "hubcluster_root": str(tmp_path / name)}
        for name, ip in HUBS.items()
    }
    inventory = write_inventory(
        tmp_path / "inventory.json",
        hubs,
        {},
        {
            "hubcluster_install_packages": False,
            "hubcluster_manage_services": False,
            "hubcluster_install_venv": True,
            "hubcluster_secrets_dir": str(tmp_path / "secrets"),
            "hubcluster_wheel": str(plain.wheel),
            "hubcluster_version": "9.9.9",
        },
    )
    code, output = attempt_playbook("hubs.yml", inventory, tmp_path / "home", timeout=240)
    assert code != 0
    version = wheel_version(plain.wheel)
    expected = (
        f"{plain.wheel.name} is hubcluster {version}, but hubcluster_version is 9.9.9: give a "
        "wheel of that version, or set hubcluster_version to the build's"
    )
    assert expected in output, output[-3000:]
    assert not (tmp_path / "hub1" / "opt").exists(), "something was installed"


def render_mongod_conf(**values: object) -> dict:
    """The mongodb_member role's mongod.conf template with its defaults and `values`."""
    import jinja2
    import yaml

    defaults = yaml.safe_load(
        (ANSIBLE_DIR / "roles" / "mongodb_member" / "defaults" / "main.yml").read_text()
    )
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    context = {
        **defaults,
        "ansible_managed": "Ansible managed",
        "inventory_hostname": "hub1",
        "hubcluster_replset_name": "CFEngineNova",
        "hubcluster_mongodb_port": 27017,
        "mongodb_member_db_path": "/var/lib/mongodb",
        "mongodb_member_bind_ip": "127.0.0.1,10.0.0.1",
        **values,
    }
    template = ANSIBLE_DIR / "roles" / "mongodb_member" / "templates" / "mongod.conf.j2"
    return yaml.safe_load(env.from_string(template.read_text()).render(context))


def test_x509_membership_is_an_option_of_mongod_conf():
    keyfile = render_mongod_conf()
    assert keyfile["security"] == {"authorization": "enabled", "keyFile": "/etc/mongod.keyfile"}
    x509 = render_mongod_conf(mongodb_member_cluster_auth="x509")
    # Members present their certificates to each other instead of sharing a keyFile.
    assert x509["security"] == {"authorization": "enabled", "clusterAuthMode": "x509"}
    assert x509["net"]["tls"]["clusterFile"] == "/etc/mongod-tls/member.pem"
    assert x509["net"]["tls"]["mode"] == "requireTLS"
