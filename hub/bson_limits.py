"""Whether a report can be stored in MongoDB at all, checked before it reaches a write.

JSON allows what BSON does not: integers past 64 bits, keys holding a NUL byte, unpaired
surrogates, any depth. mongod refuses nesting past 100 levels and documents past 16 MB, and
an update refuses `$`-prefixed keys. A report that breaks one of these is quarantined with
the reason, so that it can never fail the write that would store its host's other reports.
"""

from __future__ import annotations

from typing import Any

import bson
from bson.errors import BSONError

# mongod's limit is 100 levels for the whole document; the stored report wraps the payload.
MAX_DEPTH = 90
# mongod's limit is 16 MiB; the stored document adds its id, host, epoch and stamps.
MAX_DOC_BYTES = 16 * 1024 * 1024 - 64 * 1024


def storage_problem(record: dict[str, Any], plain: bool = False) -> str | None:
    """Why `record` cannot be stored as a BSON document, in one phrase; None when it can.

    `plain`: the record was parsed from a JSON text for which `plain_json` holds, so it
    cannot hold a key or a depth mongod refuses, and only the BSON encoding is checked.
    """
    problem = None if plain else _shape_problem(record)
    if problem:
        return problem
    try:
        size = len(bson.encode(record))
    except OverflowError:
        return "an integer beyond the 64-bit range MongoDB stores"
    except (BSONError, UnicodeError, ValueError, TypeError) as exc:
        return f"cannot be stored as BSON ({str(exc)[:120]})"
    if size > MAX_DOC_BYTES:
        return f"{size} bytes as BSON, over the {MAX_DOC_BYTES} a document may hold"
    return None


def plain_json(text: str) -> bool:
    """Whether what `text` parses to (as JSON) surely passes the key and depth checks.

    A few scans of the text in C instead of a walk over every value in Python (the walk was
    the collector's largest cost of its own per report). Conservative: a NUL in a key needs
    the escape \\u0000, a '$' key a '$' or \\u0024, and each level of nesting a bracket
    (brackets inside strings only make the count larger); text with any of them is walked.
    """
    if "$" in text or "\\u00" in text:
        return False
    return text.count("{") + text.count("[") <= MAX_DEPTH


def _shape_problem(record: dict[str, Any]) -> str | None:
    # Iterative: a recursive walk would itself overflow on the input it checks.
    stack: list[tuple[Any, int]] = [(record, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if depth > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels"
            for key, item in value.items():
                if "\x00" in key:
                    return f"a key holds a NUL byte ({key[:40]!r})"
                if key.startswith("$"):
                    return f"a key starts with '$' ({key[:40]!r})"
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            if depth > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels"
            stack.extend((item, depth + 1) for item in value)
    return None
