"""The command lines the lab starts its hubd, client-agent and hubctl children with.

Each runs the entry point under this very interpreter, so a lab (and every test using
one) runs the code of this checkout, whatever `hubd` or `hubctl` is first on PATH.
"""

from __future__ import annotations

import sys


def _python_entry(module: str) -> list[str]:
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())"]


HUBD = _python_entry("hub.daemon")
CLIENT_AGENT = _python_entry("client_agent.cli")
HUBCTL = _python_entry("hubctl.app")
