"""MongoDB's own error codes and messages, so clients react to the stand-in as to mongod."""

from __future__ import annotations

from typing import Any


class CommandError(Exception):
    """A command failure to send back as `{ok: 0, code, codeName, errmsg}`."""

    def __init__(self, code: int, code_name: str, errmsg: str, labels: list[str] | None = None):
        super().__init__(errmsg)
        self.code = code
        self.code_name = code_name
        self.errmsg = errmsg
        self.labels = labels or []

    def reply(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ok": 0,
            "code": self.code,
            "codeName": self.code_name,
            "errmsg": self.errmsg,
        }
        if self.labels:
            doc["errorLabels"] = self.labels
        return doc


def not_primary() -> CommandError:
    # pymongo retries a write only if the server labels the error (wire version >= 9).
    return CommandError(10107, "NotWritablePrimary", "not primary", ["RetryableWriteError"])


def not_primary_no_secondary_ok() -> CommandError:
    return CommandError(13435, "NotPrimaryNoSecondaryOk", "not primary and secondaryOk=false")


def not_yet_initialized() -> CommandError:
    return CommandError(94, "NotYetInitialized", "no replset config has been received")


def interrupted_by_state_change() -> CommandError:
    return CommandError(
        11602,
        "InterruptedDueToReplStateChange",
        "operation was interrupted because a replica set state change occurred",
        ["RetryableWriteError"],
    )


def write_concern_timeout() -> dict[str, Any]:
    return {
        "code": 64,
        "codeName": "WriteConcernFailed",
        "errmsg": "waiting for replication timed out",
        "errInfo": {"wtimeout": True},
    }
