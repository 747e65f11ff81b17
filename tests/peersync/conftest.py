"""Fixtures: hub SSH services on loopback (tests/sshsvc/harness.py) and their hub configs."""

from tests.sshsvc.harness import loop_thread, make_hubs  # noqa: F401
