"""The lab never gives two of its processes the same loopback port (fast)."""

from __future__ import annotations

from hubctl.lab.ports import free_port


def test_ports_handed_out_are_all_different():
    # 2,000 probes of the ~28,000 ephemeral ports: without the lab's memory of what it gave,
    # about 70 repeats (a 120-client lab met one in its first load run).
    ports = [free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports)
