"""The mongod restart action the rolling-upgrade test gives the hub play instead of systemd:
one stand-in member killed and revived through the stand-in's control API.

    python standin_member.py restart --control 127.0.0.1:PORT --member 127.0.0.1:P

Like `systemctl restart mongod`: the member stops answering, then comes back on its port
with its data, as a secondary. Exits 1 with one line when the control API refuses.
"""

from __future__ import annotations

import argparse
import sys
import time

from hubctl.lab.standin.control import ControlError, control_request

DOWN_FOR = 0.5  # seconds between stop and start, as a real restart takes some


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["restart"])
    parser.add_argument("--control", required=True, help="host:port of the control API")
    parser.add_argument("--member", required=True, help="host:port of the member")
    args = parser.parse_args()
    try:
        control_request(args.control, "kill", args.member)
        time.sleep(DOWN_FOR)
        control_request(args.control, "revive", args.member)
    except ControlError as exc:
        sys.exit(str(exc))


if __name__ == "__main__":
    main()
