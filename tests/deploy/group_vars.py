"""Reading ansible/group_vars/all.yml, where every role default is shown commented out."""

from __future__ import annotations

import re


def commented_settings(text: str) -> dict:
    """The `# key: value` settings of group_vars/all.yml (with `#   ...` block lines)."""
    import yaml

    settings, block = {}, None
    for line in text.splitlines():
        match = re.match(r"^# ([a-z][a-z0-9_]*):(.*)$", line)
        if match:
            key, rest = match.groups()
            if rest.strip() in ("", ">-", ">", "|-", "|"):  # a block follows
                block = [f"{key}:{rest}"]
                settings[key] = None
            else:
                settings.update(yaml.safe_load(f"{key}:{rest}"))
                block = None
            continue
        if block is not None and re.match(r"^#( {2,}| -)", line):
            block.append(line[2:])
            settings.update(yaml.safe_load("\n".join(block)))
        else:
            block = None
    return settings
