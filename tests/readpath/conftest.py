"""Fixtures: hub SSH services on loopback (see tests/sshsvc/harness.py)."""

from tests.sshsvc.harness import loop_thread, make_hubs  # noqa: F401
