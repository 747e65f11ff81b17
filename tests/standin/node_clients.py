"""mongosh and the Node.js driver, installed with npm into a cache outside the repo.

The versions are pinned in tests/standin/package.json; the cache directory is named by a
hash of that file, so changing a version installs afresh and never mixes two sets.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
PACKAGE_JSON = HERE / "package.json"
SCRIPTS = HERE / "js"
CACHE_ROOT = Path(os.environ.get("HUBCLUSTER_NPM_CACHE", Path.home() / ".cache/hubcluster/npm"))
INSTALL_TIMEOUT = 600
NODE_AT_LEAST = (20, 19)  # the pinned mongodb driver's "engines"; mongosh 2.x needs less


class ClientsUnavailable(RuntimeError):
    """node/npm are missing or the install failed; the message is one line for a skip."""


@dataclass
class NodeClients:
    root: Path

    @property
    def mongosh(self) -> Path:
        return self.root / "node_modules" / ".bin" / "mongosh"

    def shell(self, uri: str, script: str, timeout: float = 90, **env: str) -> dict[str, Any]:
        """Run tests/standin/js/`script` in mongosh against `uri`; its last line is JSON."""
        cmd = [str(self.mongosh), "--quiet", "--norc", uri, str(SCRIPTS / script)]
        return _run(cmd, timeout, env)

    def driver(self, script: str, **env: str) -> subprocess.Popen:
        """Start tests/standin/js/`script` under node with the pinned `mongodb` driver."""
        full = {**os.environ, **env, "NODE_PATH": str(self.root / "node_modules")}
        return subprocess.Popen(
            ["node", str(SCRIPTS / script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE,
            text=True,
            env=full,
        )

    def run_driver(self, script: str, timeout: float = 90, **env: str) -> dict[str, Any]:
        full = {**env, "NODE_PATH": str(self.root / "node_modules")}
        return _run(["node", str(SCRIPTS / script)], timeout, full)


def _run(cmd: list[str], timeout: float, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **env}
    )
    return last_json(done.stdout, done.stderr, done.returncode)


def last_json(stdout: str, stderr: str, returncode: int | None) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if returncode != 0 or not lines:
        raise AssertionError(
            f"exit {returncode}\nstdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}"
        )
    try:
        return json.loads(lines[-1])
    except ValueError:
        raise AssertionError(f"no JSON on the last line:\n{stdout[-3000:]}") from None


def install() -> NodeClients:
    """The pinned clients, installed once per package.json into the cache."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise ClientsUnavailable(f"{tool} is not on PATH; the real-client tier needs Node.js")
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
    numbers = tuple(int(n) for n in version.strip().lstrip("v").split(".")[:2] if n.isdigit())
    if numbers < NODE_AT_LEAST:
        need = ".".join(map(str, NODE_AT_LEAST))
        raise ClientsUnavailable(f"node {version.strip()} is older than {need} (mongodb needs it)")
    spec = PACKAGE_JSON.read_bytes()
    root = CACHE_ROOT / hashlib.sha256(spec).hexdigest()[:16]
    done = root / ".installed"
    if done.exists():
        return NodeClients(root)
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(CACHE_ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest session may be installing it
        if done.exists():
            return NodeClients(root)
        staging = Path(tempfile.mkdtemp(dir=CACHE_ROOT, prefix=".staging-"))
        try:
            (staging / "package.json").write_bytes(spec)
            try:
                result = subprocess.run(
                    ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                    cwd=staging,
                    capture_output=True,
                    text=True,
                    timeout=INSTALL_TIMEOUT,
                )
            except subprocess.TimeoutExpired:
                raise ClientsUnavailable(
                    f"npm install of the real clients took over {INSTALL_TIMEOUT}s"
                ) from None
            if result.returncode != 0:
                last = (result.stderr.strip().splitlines() or ["no output"])[-1]
                raise ClientsUnavailable(f"npm install of mongosh/mongodb failed: {last}")
            if root.exists():
                shutil.rmtree(root)
            staging.rename(root)
            done.write_text("ok\n")
        finally:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(staging)
    return NodeClients(root)
