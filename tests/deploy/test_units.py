"""The systemd units the roles install, rendered with the role defaults and judged by systemd.

`systemd-analyze security --offline=true` scores each unit's exposure (0 best, 10 worst) and
`systemd-analyze verify` parses it as systemd would; both run on the rendered files, so a
template change that drops a hardening line or misspells one fails here. Skipped (one line)
where systemd-analyze is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hubcluster.run_handoff import REQUEST_FILE

jinja2 = pytest.importorskip(
    "jinja2", reason="jinja2 (ansible-core) is missing; pip install -e '.[deploy]'"
)
yaml = pytest.importorskip(
    "yaml", reason="PyYAML (ansible-core) is missing; pip install -e '.[deploy]'"
)

ROLES_DIR = Path(__file__).resolve().parents[2] / "ansible" / "roles"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")

UNITS = {
    "hubd.service": "hub",
    "hubcluster-agent-serve.service": "client",
    "hubcluster-agent-run.service": "client",
    "hubcluster-agent-run.path": "client",
}
# Issue 19 s4: hubd at most 2.5, the report service (own user) at most 5.0. The agent run
# keeps root and an open file system; it must still score below where it started (9.6).
EXPOSURE_LIMIT = {
    "hubd.service": 2.5,
    "hubcluster-agent-serve.service": 5.0,
    "hubcluster-agent-run.service": 9.0,
}


def role_defaults(**overrides: object) -> dict:
    """The defaults of the hubcluster, hub and client roles, their templates resolved."""
    values: dict = {}
    for role in ("hubcluster", "hub", "client"):
        values.update(yaml.safe_load((ROLES_DIR / role / "defaults" / "main.yml").read_text()))
    # What ansible itself provides on a host of a three-hub inventory.
    values.update(ansible_managed="Ansible managed", inventory_hostname="hub1", groups={})
    values.update(overrides)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for _ in range(5):  # defaults refer to defaults; a few passes settle the chains
        for key, value in list(values.items()):
            if isinstance(value, str) and "{{" in value and key not in overrides:
                try:
                    values[key] = env.from_string(value).render(values)
                except jinja2.TemplateError:
                    pass  # inventory or ansible filters (hubcluster_hubs): no unit uses those
    return values


def render_units(directory: Path, **overrides: object) -> dict[str, Path]:
    values = role_defaults(**overrides)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    paths = {}
    for unit, role in UNITS.items():
        text = (ROLES_DIR / role / "templates" / f"{unit}.j2").read_text()
        paths[unit] = directory / unit
        paths[unit].write_text(env.from_string(text).render(values))
    return paths


def exposure(path: Path, threshold: float) -> tuple[float, int, str]:
    """The overall exposure systemd gives the unit, and the exit status at `threshold`."""
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", f"--threshold={int(threshold * 10)}", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert found, f"no overall exposure in: {result.stdout[-500:]} {result.stderr[-500:]}"
    return float(found.group(1)), result.returncode, result.stdout


@pytest.fixture(scope="module")
def units(tmp_path_factory) -> dict[str, Path]:
    return render_units(tmp_path_factory.mktemp("units"))


@needs_analyze
@pytest.mark.parametrize("unit", list(EXPOSURE_LIMIT))  # services only: a .path has no score
def test_exposure_within_the_goal(units, unit):
    score, status, report = exposure(units[unit], EXPOSURE_LIMIT[unit])
    failing = [line for line in report.splitlines() if line.startswith("✗")]
    assert score <= EXPOSURE_LIMIT[unit], f"{unit}: {score}\n" + "\n".join(failing)
    assert status == 0, f"{unit}: systemd-analyze --threshold refused {score}"


@needs_analyze
def test_systemd_parses_every_line(tmp_path):
    # verify wants ExecStart to exist: point the units at this interpreter's environment.
    paths = render_units(tmp_path, hubcluster_venv=str(Path(sys.prefix)))
    result = subprocess.run(
        [ANALYZE, "verify", "--man=no", *map(str, paths.values())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify exits 0 on unknown keys and unparsable values; it only says so.
    complaints = [
        line for line in (result.stdout + result.stderr).splitlines() if str(tmp_path) in line
    ]
    assert result.returncode == 0 and not complaints, "\n".join(complaints) or result.stderr


def unit_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_report_service_is_not_root_and_reads_the_key_as_a_credential(units):
    serve = unit_settings(units["hubcluster-agent-serve.service"])
    defaults = role_defaults()
    assert serve["User"] == [defaults["client_serve_user"]] != ["root"]
    assert serve["ReadWritePaths"] == [f"{defaults['client_workdir']}/spool"]
    assert serve["LoadCredential"] == [
        f"client-key:{defaults['client_workdir']}/ppkeys/localhost.priv"
    ]


def test_agent_run_keeps_root_and_the_system_writable(units):
    run = unit_settings(units["hubcluster-agent-run.service"])
    # Promises repair the system: no other user, no read-only file system, all capabilities.
    for blocking in ("User", "ProtectSystem", "CapabilityBoundingSet", "ProtectHome"):
        assert blocking not in run, blocking


def test_a_run_request_starts_the_root_run_service(units):
    # The report service (not root) writes the request; the path unit starts the run service,
    # which is root's (above), and `client-agent run` takes the same file.
    path = unit_settings(units["hubcluster-agent-run.path"])
    assert path["PathExists"] == [f"{role_defaults()['client_workdir']}/spool/{REQUEST_FILE}"]
    assert path["Unit"] == ["hubcluster-agent-run.service"]
    assert path["WantedBy"] == ["paths.target"]


def test_hubd_writes_only_its_workdir(units):
    hubd = unit_settings(units["hubd.service"])
    defaults = role_defaults()
    assert hubd["ProtectSystem"] == ["strict"]
    assert hubd["ReadWritePaths"] == [defaults["hub_workdir"]]
    assert hubd["User"] == [defaults["hub_user"]]
    # the collector keeps one connection per client across rounds: room for a large fleet
    assert int(hubd["LimitNOFILE"][0]) >= 500_000


def test_hubd_open_files_grow_with_the_collector_concurrency(tmp_path):
    collector = dict(role_defaults()["hub_collector"], concurrency=10_000)
    paths = render_units(tmp_path, hub_collector=collector)
    limit = int(unit_settings(paths["hubd.service"])["LimitNOFILE"][0])
    assert limit >= 2 * 10_000
