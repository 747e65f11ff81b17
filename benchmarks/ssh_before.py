"""The collector's SSH as it was before issue 15, for a baseline measured in the same run.

Before: asyncssh's first cipher (chacha20-poly1305), the clients' 15 s keepalive on every
collector connection, and asyncssh's logging formatting every call and packet before asking
its logger. Only a benchmark's in-process collector is switched, and only inside the block;
the benchmark also sets that collector's `streams` to False (a channel per ask, as before).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import hub.collector
from hubcluster import ssh_logging, ssh_options

CHACHA = "chacha20-poly1305@openssh.com"


@contextmanager
def ssh_before() -> Iterator[None]:
    shared = hub.collector.client_options

    def before(**kwargs: Any) -> dict[str, Any]:
        options = shared(**kwargs)
        ssh_logging.unguard_ssh_logging()  # shared() put the guards in place
        options["encryption_algs"] = [CHACHA] + [c for c in ssh_options.CIPHERS if c != CHACHA]
        options["keepalive_interval"] = ssh_options.CLIENT_KEEPALIVE_SECONDS
        return options

    hub.collector.client_options = before  # type: ignore[assignment]
    ssh_logging.unguard_ssh_logging()
    try:
        yield
    finally:
        hub.collector.client_options = shared
        ssh_logging.guard_ssh_logging()
