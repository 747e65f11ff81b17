"""The exit statuses shared by hubctl, hubd and client-agent (README.md, "Exit statuses").

Scripts and monitoring branch on these, so every command uses the same four (`hubctl
status` too: degraded and no primary are both 1). Only `hubctl check` answers in Nagios'
OK/WARNING/CRITICAL/UNKNOWN instead, which keeps 3 for "could not reach the cluster" too.
"""

from __future__ import annotations

EXIT_OK = 0
# The command ran and what it was asked to do failed (or, for an agent run, promises were
# not kept).
EXIT_FAILED = 1
# The command line, a config file or local state is wrong: running it again as it is cannot
# succeed.
EXIT_USAGE = 2
# Nothing answered: the cluster, a hub or a member could not be reached. Worth retrying.
EXIT_UNREACHABLE = 3
