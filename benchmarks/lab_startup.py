"""How long `hubctl lab up` takes to be ready: the lab's way vs the way it was before.

Run: .venv/bin/python -m benchmarks.lab_startup [--clients 100] [--concurrency 8]
     [--baseline-clients 100]

Brings a whole lab up (replica set, three hubd, CLIENTS clients bootstrapped to the master
and serving) as `hubctl lab up` does: bootstraps CONCURRENCY at a time, each client-agent
forked from a zygote that imported it once. Then the baseline, in the same run: the lab as
it was before, one fresh `client-agent bootstrap` interpreter after another, then a fresh
`client-agent serve` for each. Prints each part's time and the ratios. Every client must be
registered once and serving, or the run exits 1.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from hub.mongo import DB_NAME, connect
from hubctl.lab.child_commands import CLIENT_AGENT
from hubctl.lab.cluster import LabCluster
from hubctl.lab.lab_hubs import LabHub
from hubctl.lab.ports import wait_port


class SequentialLab(LabCluster):
    """The lab's client start-up as it was before concurrent, forked bootstraps."""

    def bootstrap_clients(self, hub: LabHub) -> None:
        for c in self.fleet:
            out = subprocess.run(
                CLIENT_AGENT
                + ["bootstrap", hub.service, "--config", str(c.config)]
                + ["--hub-fingerprint", self.fingerprint],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if out.returncode != 0:
                raise RuntimeError(f"bootstrap of {c.name} failed: {out.stderr.strip()}")
            log = open(c.log, "ab")  # noqa: SIM115 - the child owns it
            c.proc = subprocess.Popen(  # type: ignore[assignment]
                CLIENT_AGENT + ["serve", "--config", str(c.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        for c in self.fleet:
            wait_port(c.port, 30, f"{c.name}'s report service")


def _proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of a live process (and of the children it has reaped) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def lab_cpu(lab: LabCluster) -> float:
    """CPU seconds every lab process has used: this one, hubd, the zygote, the clients."""
    total = _own_cpu()
    total += sum(_proc_cpu(h.proc.pid) for h in lab.hubs if h.proc is not None)
    if lab.forker is not None:
        total += _proc_cpu(lab.forker.pid, children=True)
    return total + sum(_proc_cpu(c.proc.pid) for c in lab.fleet if c.proc is not None)


def one_lab(lab: LabCluster) -> tuple[dict[str, float], bool]:
    before = _own_cpu()
    try:
        lab.up()
        cpu = lab_cpu(lab) - before
        client = connect(lab.uri, timeout=10)
        try:
            registered = client[DB_NAME].hosts.count_documents({})
        finally:
            client.close()
        serving = all(c.proc is not None and c.proc.poll() is None for c in lab.fleet)
        print(f"  {lab.ready_line()}; {registered} hosts registered")
        print(
            f"  CPU used by all lab processes: {cpu:.1f} s "
            f"({cpu / lab.clients * 1000:.0f} ms a client)"
        )
        return {**lab.timings, "cpu": cpu}, registered == lab.clients and serving
    finally:
        lab.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=LabCluster.bootstrap_concurrency)
    parser.add_argument("--baseline-clients", type=int, default=None)
    args = parser.parse_args()
    baseline_clients = args.baseline_clients or args.clients
    print(f"{os.cpu_count()} cores; replica set: {LabCluster(Path('.')).replset_kind}")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"lab: {args.clients} clients, {args.concurrency} bootstraps at a time, forked")
        new, ok_new = one_lab(
            LabCluster(
                Path(tmp) / "lab", clients=args.clients, bootstrap_concurrency=args.concurrency
            )
        )
        print(f"baseline: {baseline_clients} clients, one fresh interpreter after another")
        old, ok_old = one_lab(SequentialLab(Path(tmp) / "baseline", clients=baseline_clients))
    per_new = new["clients"] / args.clients
    per_old = old["clients"] / baseline_clients
    print(
        f"ready: {new['total']:.1f} s vs {old['total']:.1f} s "
        f"({old['total'] / new['total']:.1f}x); clients part {per_new * 1000:.0f} ms vs "
        f"{per_old * 1000:.0f} ms per client ({per_old / per_new:.1f}x)"
    )
    print(
        f"CPU: {new['cpu']:.1f} s vs {old['cpu']:.1f} s ({old['cpu'] / new['cpu']:.1f}x); "
        f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    sys.exit(0 if ok_new and ok_old else 1)


if __name__ == "__main__":
    main()
