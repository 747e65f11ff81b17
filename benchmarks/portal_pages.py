"""Portal response times (overview, hosts pages, hosts API, host detail) at N hosts.

Run: .venv/bin/python -m benchmarks.portal_pages [--hosts 1000] [--rounds 20]

Fills a stand-in set through the collector's write path (HubStore.store_pulls, as
benchmarks/compliance_read.py does: one outcome and one inventory per host) and the
master's compliance record after that round (hub.compliance_history), starts a real
`hubd run` whose member is a secondary (so it serves pages and never collects), logs in over
HTTP and times each page, median and p95. Baseline, measured in the same run: the read
`hubctl query hosts` does (Queries.hosts from a secondary), called in this process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.compliance_read import _pull
from hub import compliance_history
from hub.mongo import connect, use_access
from hub.portal.passwords import hash_secret
from hub.queries import Queries, read_preference
from hub.replset import ReplicaSet
from hub.store import HubStore
from hubctl.lab.ports import free_port
from hubctl.lab.standin import StandinCluster

HUBD = [sys.executable, "-c", "import sys; from hub.daemon import main; sys.exit(main())"]
PASSWORD = "bench-password"


def _times(fn, rounds: int) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times), times[max(0, int(round(0.95 * len(times))) - 1)]


def _config(directory: Path, cluster: StandinCluster, me: int, port: int) -> Path:
    hubs = "".join(
        f'[[hubs]]\nname = "hub{i}"\nmongo = "{host}"\nservice = "127.0.0.1:{free_port()}"\n\n'
        for i, host in enumerate(cluster.hosts, 1)
    )
    path = directory / "hub.toml"
    # hubd logs in as the hubd user over TLS, as a deployed hub does.
    password = directory / "hubd-password"
    password.touch(mode=0o600)
    password.write_text(cluster.password_file("hubd").read_text())
    replset = (
        f'uri = "{cluster.uri}"\nusername = "hubd"\npassword_file = "{password}"\n'
        f'tls_ca_file = "{cluster.ca_file}"\n'
    )
    path.write_text(
        f'[hub]\nname = "hub{me}"\nworkdir = "{directory / "work"}"\n'
        f'listen = "127.0.0.1:{free_port()}"\n\n[replset]\n{replset}\n'
        f'[portal]\nport = {port}\n\n[[portal.users]]\nname = "bench"\nrole = "viewer"\n'
        f'password_hash = "{hash_secret(PASSWORD)}"\n\n{hubs}'
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with StandinCluster(election_timeout=1.0) as cluster, tempfile.TemporaryDirectory() as tmp:
        cluster.initiate(election_timeout_ms=1000)
        use_access(cluster.access("hubd"))  # this process writes as hubd does
        rs = ReplicaSet(cluster.uri)
        primary = rs.wait_for_primary(30)
        rs.close()
        client = connect(cluster.uri, timeout=300)
        store = HubStore(client)
        store.ensure_indexes()
        hosts = [f"{i:064x}" for i in range(args.hosts)]
        for i, host in enumerate(hosts):
            store.record_host(host, f"host{i:05d}", "127.0.0.1", 5309, hub="hub1")
        pulls = [_pull(h, i, 0, 10) for i, h in enumerate(hosts)]
        for start in range(0, len(pulls), 200):
            store.store_pulls(pulls[start : start + 200], "hub1")
        store.record_last_seen("hub1", {p.host: p.pulled_at for p in pulls})
        # What the master writes after a round that stored reports (the overview reads it).
        compliance_history.record(store.db, dt.datetime.now(dt.UTC))
        me = next(i for i, h in enumerate(cluster.hosts, 1) if h != primary)
        port = free_port()
        config = _config(Path(tmp), cluster, me, port)
        subprocess.run(HUBD + ["init", "--config", str(config)], check=True, capture_output=True)
        log = open(Path(tmp) / "hubd.log", "wb")  # noqa: SIM115
        hubd = subprocess.Popen(HUBD + ["run", "--config", str(config)], stdout=log, stderr=log)
        try:
            web = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
            deadline = time.monotonic() + 180
            said = "nothing"
            while True:
                try:
                    got = web.get("/health")
                    if got.status_code == 200:
                        break
                    said = got.text
                except httpx.TransportError as exc:
                    said = str(exc)
                if time.monotonic() > deadline:
                    tail = (Path(tmp) / "hubd.log").read_text()[-2000:]
                    raise SystemExit(f"hubd's portal: no 200 in 180 s ({said})\n{tail}")
                time.sleep(0.2)
            form = web.get("/login").text
            csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            web.post("/login", data={"csrf": csrf, "name": "bench", "password": PASSWORD})
            assert web.get("/").status_code == 200
            pages = {
                "overview /": "/",
                "hosts page 1": "/hosts",
                "hosts search": "/hosts?q=host00042",
                "hosts sorted, last page": f"/hosts?sort=last_seen&page={-(-args.hosts // 50)}",
                "API /api/hosts": "/api/hosts",
                "host detail": "/hosts/host00042",
            }
            figures = {}
            for label, path in pages.items():
                assert web.get(path).status_code == 200, path
                figures[label] = _times(lambda p=path: web.get(p), args.rounds)
            queries = Queries(client, read_preference("secondaryPreferred", 90))
            baseline = _times(queries.hosts, args.rounds)
        finally:
            hubd.terminate()
            hubd.wait(30)
            client.close()
    print(f"hosts {args.hosts}, rounds {args.rounds} (median / p95, seconds)")
    print(f"baseline Queries.hosts() in-process: {baseline[0]:.3f} / {baseline[1]:.3f}")
    for label, (median, p95) in figures.items():
        ratio = median / baseline[0]
        print(f"{label:26} {median:.3f} / {p95:.3f}  ({ratio:.1f}x baseline)")


if __name__ == "__main__":
    main()
