"""MongoDB's own error codes and messages, so clients react to the stand-in as to mongod."""

from __future__ import annotations

from typing import Any


class CommandError(Exception):
    """A command failure to send back as `{ok: 0, code, codeName, errmsg}`."""

    def __init__(
        self,
        code: int,
        code_name: str,
        errmsg: str,
        labels: list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(errmsg)
        self.code = code
        self.code_name = code_name
        self.errmsg = errmsg
        self.labels = labels or []
        self.extra = extra or {}

    def reply(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ok": 0,
            "code": self.code,
            "codeName": self.code_name,
            "errmsg": self.errmsg,
            **self.extra,
        }
        if self.labels:
            doc["errorLabels"] = self.labels
        return doc


def not_primary(errmsg: str = "not primary") -> CommandError:
    # pymongo retries a write only if the server labels the error (wire version >= 9).
    return CommandError(10107, "NotWritablePrimary", errmsg, ["RetryableWriteError"])


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


def shutting_down() -> CommandError:
    return CommandError(
        91, "ShutdownInProgress", "The server is in quiesce mode and will shut down"
    )


def unsatisfiable_write_concern(errmsg: str) -> dict[str, Any]:
    return {"code": 100, "codeName": "UnsatisfiableWriteConcern", "errmsg": errmsg}


def unknown_write_concern(w: Any) -> dict[str, Any]:
    return {
        "code": 79,
        "codeName": "UnknownReplWriteConcern",
        "errmsg": f"No write concern mode named '{w}' found in replica set configuration",
    }
