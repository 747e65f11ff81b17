"""The one way a client talks to a hub: SSH with the pinned hub key and a short timeout.

All hubs share one host key, so the pin is the key itself, accepted at any hub address
(`known_hosts=([pinned], [], [])`). Failures come back as HubError subclasses whose message
says which hub and what went wrong, ready for a summary line.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncssh

from hubcluster.config_check import split_address
from hubcluster.keys import key_fingerprint
from hubcluster.messages import MasterInfo, MessageError, RegisterReply, RegisterRequest
from hubcluster.ssh_options import client_options, host_key_probe_options

USERNAME = "hubcluster"
DEFAULT_HUB_PORT = 5308
# Longer than the hub's own 5 s limit on asking the replica set, short enough for a run.
COMMAND_TIMEOUT = 10.0
# What we read of a hub's answer, at most: `master`, `register` and `masterfiles` answers are
# a few hundred bytes; peer sync allows more for `keys` (hub.peer_sync.KEYS_ANSWER_MAX_BYTES).
ANSWER_MAX_BYTES = 1 << 20
# What we keep of a refusal's words.
ERROR_MAX_BYTES = 64 * 1024
_CHUNK = 64 * 1024


class HubError(Exception):
    """Talking to a hub failed; the message names the hub."""


class HubUnreachable(HubError):
    pass


class HubKeyMismatch(HubError):
    pass


class HubRefused(HubError):
    """The hub answered, and said no (its own words are the message)."""


class HubBadAnswer(HubError):
    pass


def hub_endpoint(address: str) -> tuple[str, int]:
    """`host[:port]` with the hub service's default port."""
    return split_address(address, DEFAULT_HUB_PORT)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


async def fetch_hub_key(address: str, timeout: float) -> asyncssh.SSHKey:
    """The host key a hub presents, without trusting it (for pin checks and trust-on-first-use)."""
    host, port = hub_endpoint(address)
    try:
        async with asyncio.timeout(timeout):
            key = await asyncssh.get_server_host_key(host, port, **host_key_probe_options())
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        raise HubUnreachable(f"hub {address}: {_describe(exc)}") from None
    if key is None:
        raise HubBadAnswer(f"hub {address}: presented no host key")
    return key


class HubSession:
    """An authenticated connection to one hub."""

    def __init__(self, address: str, conn: asyncssh.SSHClientConnection) -> None:
        self.address = address
        self.conn = conn

    @property
    def local_address(self) -> str | None:
        sock = self.conn.get_extra_info("sockname")
        return str(sock[0]) if sock else None

    async def run(self, command: str, max_bytes: int = ANSWER_MAX_BYTES) -> str:
        """Run a hub command; its stdout, or HubRefused with the hub's own words.

        The answer is read as a stream, never more than `max_bytes` of it: a longer one is
        refused (HubBadAnswer), so a hub's memory never follows what another sends.
        """
        name = command.split(" ", 1)[0]
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                async with self.conn.create_process(command, encoding=None) as process:
                    out = await read_bounded(process.stdout, max_bytes)
                    err = await read_bounded(process.stderr, ERROR_MAX_BYTES)
                    if out is None:
                        raise HubBadAnswer(
                            f"hub {self.address}: {name}: answer over {max_bytes} bytes; refused"
                        )
                    completed = await process.wait()
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            raise HubUnreachable(f"hub {self.address}: {name}: {_describe(exc)}") from None
        if completed.exit_status != 0:
            said = (err or b"").decode(errors="replace").strip()
            said = said or f"exit status {completed.exit_status}"
            raise HubRefused(f"hub {self.address} refused {name}: {said}")
        try:
            return out.decode()
        except UnicodeDecodeError:
            raise HubBadAnswer(f"hub {self.address}: {name}: answer is not UTF-8") from None

    async def master(self) -> MasterInfo:
        text = await self.run("master")
        try:
            return MasterInfo.from_json(text)
        except MessageError as exc:
            raise HubBadAnswer(f"hub {self.address}: {exc}") from None

    async def register(self, request: RegisterRequest) -> RegisterReply:
        # On the command line, not stdin: a hub that refuses at once cannot race our write.
        text = await self.run("register " + request.to_json())
        try:
            return RegisterReply.from_json(text)
        except MessageError as exc:
            raise HubBadAnswer(f"hub {self.address}: {exc}") from None


@asynccontextmanager
async def open_hub(
    address: str, client_key: asyncssh.SSHKey, hub_key: asyncssh.SSHKey, timeout: float
) -> AsyncIterator[HubSession]:
    """Connect to the hub at `address`, which must present `hub_key`."""
    host, port = hub_endpoint(address)
    pinned = hub_key.convert_to_public()
    try:
        conn = await asyncssh.connect(
            host,
            port,
            **client_options(
                username=USERNAME,
                client_keys=[client_key],
                known_hosts=([pinned], [], []),
                connect_timeout=timeout,
            ),
        )
    except asyncssh.HostKeyNotVerifiable:
        raise await _mismatch(address, pinned, timeout) from None
    except asyncssh.PermissionDenied:
        raise HubRefused(
            f"hub {address} refused this client's key "
            f"{key_fingerprint(client_key)} (revoked, or not registered)"
        ) from None
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        raise HubUnreachable(f"hub {address}: {_describe(exc)}") from None
    try:
        yield HubSession(address, conn)
    finally:
        conn.close()
        await conn.wait_closed()


async def read_bounded(
    stream: asyncssh.SSHReader[bytes], limit: int, chunk: int = _CHUNK
) -> bytes | None:
    """Everything up to EOF, or None (and the rest unread) once past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while data := await stream.read(chunk):
        size += len(data)
        if size > limit:
            return None
        chunks.append(data)
    return b"".join(chunks)


async def _mismatch(address: str, pinned: asyncssh.SSHKey, timeout: float) -> HubError:
    try:
        presented = key_fingerprint(await fetch_hub_key(address, timeout))
    except HubError:
        presented = "an unknown key"
    return HubKeyMismatch(
        f"hub {address} presented {presented}, but the pinned hub key is "
        f"{key_fingerprint(pinned)}: REFUSING to talk to it (a man in the middle, or a "
        "re-keyed hub: check, then bootstrap again with --hub-fingerprint)"
    )
