"""What an operator would otherwise script to pull the same reports: OpenSSH with xargs -P,
and Ansible's raw module with forks. Used by benchmarks/collection.py --baselines.

Both fetch into files only (an operator's script would still have to parse and store them);
the collector's figures include majority writes to the replica set.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
from pathlib import Path


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def prepare(tmp: Path, clients: list[tuple[str, int]], hub_key_path: Path) -> dict[str, Path]:
    """known_hosts pinning every client's key, the hub key for OpenSSH, an Ansible inventory."""
    known = tmp / "known_hosts"
    lines, inventory = [], ["[fleet]"]
    for i, (_, port) in enumerate(clients):
        pub = (tmp / "clients" / f"c{i:05d}" / "ppkeys" / "localhost.pub").read_text().split()
        lines.append(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}")
        inventory.append(f"c{i:05d} ansible_host=127.0.0.1 ansible_port={port}")
    known.write_text("\n".join(lines) + "\n")
    key = tmp / "hub_openssh_key"
    shutil.copy(hub_key_path, key)
    os.chmod(key, 0o600)
    (tmp / "inventory.ini").write_text("\n".join(inventory) + "\n")
    (tmp / "ports").write_text("".join(f"{port}\n" for _, port in clients))
    (tmp / "cm").mkdir(exist_ok=True)
    return {"known": known, "key": key, "inventory": tmp / "inventory.ini", "ports": tmp / "ports"}


def _ssh_options(files: dict[str, Path], tmp: Path) -> list[str]:
    return [
        "-o",
        f"UserKnownHostsFile={files['known']}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ControlMaster=auto",
        "-o",
        f"ControlPath={tmp}/cm/%p",
        "-o",
        "ControlPersist=120",
        "-i",
        str(files["key"]),
    ]


def openssh_round(tmp: Path, files: dict[str, Path], count: int, concurrency: int) -> dict:
    out = tmp / "openssh-out"
    out.mkdir(exist_ok=True)
    ssh = " ".join(["ssh", *_ssh_options(files, tmp)])
    script = (
        f"xargs -P {concurrency} -I{{}} sh -c "
        f"'{ssh} -p {{}} hubcluster@127.0.0.1 \"reports --since 0\" > {out}/{{}}.jsonl' "
        f"< {files['ports']}"
    )
    return _timed(["sh", "-c", script], count, lambda: _fetched(out, count))


def ansible_round(tmp: Path, files: dict[str, Path], count: int, forks: int) -> dict:
    env = dict(os.environ)
    env.update(
        ANSIBLE_HOST_KEY_CHECKING="True",
        ANSIBLE_SSH_ARGS=" ".join(_ssh_options(files, tmp)[:-2]),
        ANSIBLE_PRIVATE_KEY_FILE=str(files["key"]),
        ANSIBLE_REMOTE_USER="hubcluster",
        ANSIBLE_GATHERING="explicit",
        ANSIBLE_PYTHON_INTERPRETER="/usr/bin/false",
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp / "cm"),
        ANSIBLE_STDOUT_CALLBACK="minimal",
        # raw asks for a TTY by default; a report service offers none, as a lean sshd may not.
        ANSIBLE_SSH_USETTY="False",
    )
    ansible = shutil.which("ansible") or str(
        Path(__file__).resolve().parents[1] / ".venv/bin/ansible"
    )
    cmd = [
        ansible,
        "fleet",
        "-i",
        str(files["inventory"]),
        "-m",
        "raw",
        "-a",
        "reports --since 0",
        "-f",
        str(forks),
    ]
    outfile = tmp / "ansible-out.txt"

    def fetched() -> int:
        return outfile.read_text(errors="replace").count("| CHANGED | rc=0 >>")

    return _timed(cmd, count, fetched, env=env, stdout=outfile)


def _fetched(out: Path, count: int) -> int:
    return sum(1 for p in out.glob("*.jsonl") if p.stat().st_size > 0)


def _timed(cmd: list[str], count: int, fetched, env=None, stdout: Path | None = None) -> dict:
    cpu0, t0 = _children_cpu(), time.perf_counter()
    with open(stdout or os.devnull, "wb") as sink:
        subprocess.run(cmd, env=env, stdout=sink, stderr=subprocess.DEVNULL, timeout=1800)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    ok = fetched()
    return {
        "pulled": ok,
        "failed": count - ok,
        "seconds": wall,
        "clients_per_s": ok / wall if wall else 0.0,
        "cpu_per_client": cpu / max(ok, 1),
    }
