"""A Prometheus on loopback that scrapes the lab's three hubs and loads the shipped alerts.

Debian's `prometheus` binary, run as a child of the lab with its data in the lab directory;
the scrape and rule intervals are a second so that a lab failover shows within seconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hubctl.lab.ports import free_port
from hubctl.lab.processes import stop_process

RULES = Path(__file__).parents[2] / "ansible" / "monitoring" / "hubcluster-alerts.yml"
SCRAPE_SECONDS = 1.0
READY_SECONDS = 30.0


class PrometheusMissing(RuntimeError):
    """No prometheus binary (Debian: apt-get install prometheus)."""


class LabPrometheus:
    def __init__(self, directory: Path, targets: Sequence[tuple[str, str]]) -> None:
        """`targets`: (hub name, host:port of its portal)."""
        self.directory = directory / "prometheus"
        self.targets = list(targets)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def config(self) -> dict[str, Any]:
        scrape = f"{SCRAPE_SECONDS:g}s"
        config: dict[str, Any] = {
            "global": {"scrape_interval": scrape, "evaluation_interval": scrape},
            "scrape_configs": [
                {
                    "job_name": "hubcluster",
                    "scrape_timeout": scrape,
                    "static_configs": [
                        {"targets": [address], "labels": {"instance": name}}
                        for name, address in self.targets
                    ],
                }
            ],
        }
        if RULES.exists():  # a checkout; an installed hubctl has no ansible/ beside it
            config["rule_files"] = [str(RULES)]
        return config

    def start(self) -> str:
        binary = shutil.which("prometheus")
        if binary is None:
            raise PrometheusMissing("no prometheus binary (Debian: apt-get install prometheus)")
        self.directory.mkdir(parents=True, exist_ok=True)
        config_file = self.directory / "prometheus.yml"
        # JSON is YAML: no YAML writer needed.
        config_file.write_text(json.dumps(self.config(), indent=2))
        self.port = free_port()
        log = (self.directory / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        log.close()
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited; see {self.directory / 'prometheus.log'}")
            try:
                with urllib.request.urlopen(f"{self.url}-/ready", timeout=1.0) as answer:
                    if answer.status == 200:
                        return self.url
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"prometheus was not ready within {READY_SECONDS:g}s")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector: [{"metric": {...}, "value": [t, "v"]}, ...]."""
        address = f"{self.url}api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(address, timeout=5.0) as answer:
            body = json.loads(answer.read())
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus refused {expr!r}: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None
