"""The lab's sample policy, and publishing it through the master as an operator would.

Its three promises show the three outcomes a lab run can have: one kept, one repaired
once, one out of context.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

from hubctl.lab.child_commands import HUBCTL

if TYPE_CHECKING:
    from hubctl.lab.cluster import LabCluster

SAMPLE_PROMISES = """\
# The lab's sample policy: one promise kept, one repaired once, one out of context.
[[promise]]
name = "lab_marker"
check = "test -f lab-marker"
repair = "touch lab-marker"

[[promise]]
name = "always_true"
check = "true"

[[promise]]
name = "sunday_only"
check = "true"
if = "Sunday"
"""


def publish_sample(lab: LabCluster) -> str:
    """`hubctl masterfiles publish` the sample policy on the master; returns the release."""
    source = lab.directory / "sample-masterfiles"
    source.mkdir(parents=True, exist_ok=True)
    (source / "promises.toml").write_text(SAMPLE_PROMISES)
    (source / "README").write_text("hubcluster lab sample policy\n")
    master = lab.master()
    assert master is not None
    out = subprocess.run(
        HUBCTL + ["masterfiles", "publish", str(source), "--config", str(master.config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=lab.child_env("operator"),
    )
    if out.returncode != 0:
        raise RuntimeError(f"publishing the sample policy failed: {out.stderr.strip()}")
    return out.stdout.strip().split()[-1]
