"""The hub's SSH service: `master`, `register`, peer `keys`/`masterfiles`, release transfers
(`release-manifest`/`release-files`, hub.release_service). No SFTP and no shell: every
session runs one command from the role's table.

Its host key is the hub key pair shared by all hubs, so a client that pinned it can talk to
any hub. What a connection may do depends on its role (see hub.ssh_auth); the commands of
each role are one table, so peer commands are added by adding rows.

hubd wires three hooks: `master_info()` (the replica set's view), `on_register(record)` (the
host's database row) and `on_contact(sha, address)` ("last seen"). Tests inject their own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from hub.config import HubConfig
from hub.keystore import KeyRevoked, KeyStore
from hub.masterfiles import current_release_id, releases_dir
from hub.peer_commands import keys_reply, masterfiles_reply
from hub.release_generations import served_generation
from hub.release_service import TransferRefused, release_files, release_manifest
from hub.ssh_auth import HubSSHServer, Identity, Role, peer_ip
from hubcluster.config_check import split_address
from hubcluster.hub_session import read_bounded
from hubcluster.keys import key_fingerprint, load_private_key
from hubcluster.messages import MasterInfo, MessageError, RegisterReply, RegisterRequest
from hubcluster.ssh_admission import Admission
from hubcluster.ssh_options import server_options

log = logging.getLogger("hubcluster.ssh")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MasterInfoProvider = Callable[[], Awaitable[MasterInfo]]


@dataclass(frozen=True)
class HostRecord:
    """A registered client as the hub records it: key SHA, name, address, report port."""

    sha: str
    hostname: str
    address: str
    report_port: int


RegisterHook = Callable[[HostRecord], Awaitable[None]]
ContactHook = Callable[[str, str], Awaitable[None]]

# Exit statuses of commands, so a client can tell a refusal from its own mistake.
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_BAD_REQUEST = 2
EXIT_HUB_ERROR = 3

# A registration request (hostname and port as JSON) is under 1 KiB: this much, on the command
# line or on stdin, is refused. (asyncssh bounds a command line to its packet size anyway.)
MAX_REQUEST_BYTES = 64 * 1024
REQUEST_TIMEOUT = 10.0
PROVIDER_TIMEOUT = 5.0


class CommandError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Command = Callable[["HubService", Identity, "asyncssh.SSHServerProcess[str]", str], Awaitable[str]]


class HubService:
    """State shared by all connections of one hub's SSH service."""

    def __init__(
        self,
        workdir: Path,
        master_info: MasterInfoProvider,
        trust_keys_from: Sequence[Network] = (),
        on_register: RegisterHook | None = None,
        on_contact: ContactHook | None = None,
        name: str = "hub",
    ) -> None:
        self.workdir = Path(workdir)
        self.name = name
        self.keystore = KeyStore(self.workdir / "ppkeys")
        self.hub_key = load_private_key(self.keystore.hub_private_key_path)
        self.masterfiles = self.workdir / "masterfiles"
        self.releases = releases_dir(self.masterfiles)
        self.releases.mkdir(parents=True, exist_ok=True)
        self.trust_keys_from = list(trust_keys_from)
        self.master_info = master_info
        self.on_register = on_register
        self.on_contact = on_contact
        self._background: set[asyncio.Task] = set()
        # Who authenticated on each live connection; sessions look themselves up here.
        self._identities: weakref.WeakKeyDictionary[object, Identity] = weakref.WeakKeyDictionary()
        self.admission = Admission(f"{name} SSH service")

    # ----- connections ------------------------------------------------------------------
    def server(self) -> HubSSHServer:
        return HubSSHServer(self.hub_key, self.keystore, self._authenticated, self.admission)

    def _authenticated(self, conn: asyncssh.SSHServerConnection, identity: Identity) -> None:
        self._identities[conn] = identity
        # Every client connects every run: per-connection lines are debug, decisions are info.
        log.debug("%s: %s connected", self.name, identity.label)
        if identity.role is Role.CLIENT and self.on_contact is not None:
            task = asyncio.get_running_loop().create_task(self._contact(identity))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _contact(self, identity: Identity) -> None:
        assert self.on_contact is not None
        try:
            await self.on_contact(identity.sha, identity.address)
        except Exception as exc:  # a last-seen write must never break a client's session
            log.warning("%s: could not record contact from %s: %s", self.name, identity.label, exc)

    def _identity(self, conn: object) -> Identity | None:
        return self._identities.get(conn) if conn is not None else None

    async def process(self, process: asyncssh.SSHServerProcess) -> None:
        """asyncssh's `process_factory`: one command of an authenticated connection."""
        identity = self._identity(process.get_extra_info("connection"))
        if identity is None:  # asyncssh opens sessions only after authentication
            self._finish(process, EXIT_REFUSED, "", "not authenticated")
            return
        await self._run(identity, process)

    async def _run(self, identity: Identity, process: asyncssh.SSHServerProcess) -> None:
        command = process.command
        if command is None:
            what = f"subsystem {process.subsystem}" if process.subsystem else "a shell"
            self._finish(process, EXIT_BAD_REQUEST, "", f"{what} is not offered; run a command")
            return
        name, _, rest = command.strip().partition(" ")
        allowed = COMMANDS[identity.role]
        handler = allowed.get(name)
        if handler is None:
            known = ", ".join(sorted(allowed)) or "nothing"
            if any(name in table for table in COMMANDS.values()):
                message = (
                    f"{name!r} is not allowed for {identity.role.value} keys (allowed: {known})"
                )
                status = EXIT_REFUSED
            else:
                message = f"unknown command {name!r} (allowed: {known})"
                status = EXIT_BAD_REQUEST
            log.warning("%s: refused %s: %s", self.name, identity.label, message)
            self._finish(process, status, "", message)
            return
        try:
            output = await handler(self, identity, process, rest.strip())
        except CommandError as exc:
            self._finish(process, exc.status, "", str(exc))
            return
        except Exception as exc:
            log.exception("%s: %s failed for %s", self.name, name, identity.label)
            self._finish(process, EXIT_HUB_ERROR, "", f"{name} failed on the hub: {exc}")
            return
        self._finish(process, EXIT_OK, output, "")

    @staticmethod
    def _finish(process: asyncssh.SSHServerProcess, status: int, out: str, err: str) -> None:
        # The channel carries bytes (a release transfer streams them); answers are UTF-8.
        if out:
            process.stdout.write((out if out.endswith("\n") else out + "\n").encode())
        if err:
            process.stderr.write((err + "\n").encode())
        process.exit(status)

    # ----- commands ---------------------------------------------------------------------
    async def cmd_master(
        self, identity: Identity, process: asyncssh.SSHServerProcess, args: str
    ) -> str:
        if args:
            raise CommandError(EXIT_BAD_REQUEST, "master takes no arguments")
        try:
            info = await asyncio.wait_for(self.master_info(), PROVIDER_TIMEOUT)
        except Exception as exc:
            log.error("%s: cannot tell %s who is master: %s", self.name, identity.label, exc)
            raise CommandError(
                EXIT_HUB_ERROR, f"the hub cannot tell who is master now: {exc}"
            ) from None
        # Clients fetch the files this hub serves, so the release named must be this hub's.
        release = current_release_id(self.masterfiles)
        generation = served_generation(self.masterfiles, release)
        info = dataclasses.replace(info, release=release, generation=generation)
        return info.to_json()

    async def cmd_register(
        self, identity: Identity, process: asyncssh.SSHServerProcess, args: str
    ) -> str:
        if len(args.encode()) > MAX_REQUEST_BYTES:
            raise CommandError(
                EXIT_BAD_REQUEST, f"request too large (over {MAX_REQUEST_BYTES} bytes)"
            )
        text = args or await _read_request(process)
        try:
            request = RegisterRequest.from_json(text)
        except MessageError as exc:
            raise CommandError(EXIT_BAD_REQUEST, str(exc)) from None
        fingerprint = key_fingerprint(identity.key)
        if identity.role is Role.UNREGISTERED and not self._trusted(identity.address):
            nets = ", ".join(map(str, self.trust_keys_from)) or "nothing"
            log.warning(
                "%s: refused registration of %s (%s) from %s: trust_keys_from (%s) "
                "does not include it",
                self.name,
                request.hostname,
                fingerprint,
                identity.address,
                nets,
            )
            raise CommandError(
                EXIT_REFUSED,
                f"registration refused: this hub's trust_keys_from does not include your "
                f"address {identity.address}; register from a trusted network or ask the "
                "hub operator to add it",
            )
        try:
            # In a thread: the key file is written and fsynced, off the loop clients share.
            sha, new = await asyncio.to_thread(self.keystore.add, identity.key)
        except KeyRevoked:
            raise CommandError(EXIT_REFUSED, "registration refused: this key was revoked") from None
        record = HostRecord(sha, request.hostname, identity.address, request.report_port)
        if self.on_register is not None:
            try:
                await self.on_register(record)
            except Exception as exc:
                log.error("%s: could not record host %s: %s", self.name, request.hostname, exc)
                raise CommandError(
                    EXIT_HUB_ERROR,
                    f"the hub stored your key but could not record the host ({exc}); "
                    "run bootstrap again",
                ) from None
        log.info(
            "%s: registered %s %s (%s) from %s, report port %d",
            self.name,
            "new client" if new else "client",
            request.hostname,
            fingerprint,
            identity.address,
            request.report_port,
        )
        return RegisterReply(
            sha, request.hostname, identity.address, request.report_port, new
        ).to_json()

    def _trusted(self, address: str) -> bool:
        try:
            ip = peer_ip(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trust_keys_from if net.version == ip.version)


async def _read_request(process: asyncssh.SSHServerProcess) -> str:
    """The JSON request on stdin, up to EOF, bounded in size and time."""
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            request = await read_bounded(process.stdin, MAX_REQUEST_BYTES, 4096)
    except TimeoutError:
        raise CommandError(
            EXIT_BAD_REQUEST, "no request on stdin (send JSON and close it)"
        ) from None
    if request is None:
        raise CommandError(EXIT_BAD_REQUEST, f"request too large (over {MAX_REQUEST_BYTES} bytes)")
    return request.decode(errors="replace")


def _answer(name: str, answer: Callable[[HubService], str]) -> Command:
    """A command without arguments whose answer is read from disk (in a thread: it may be big)."""

    async def handler(
        service: HubService, identity: Identity, process: asyncssh.SSHServerProcess, args: str
    ) -> str:
        if args:
            raise CommandError(EXIT_BAD_REQUEST, f"{name} takes no arguments")
        return await asyncio.to_thread(answer, service)

    return handler


def _transfer(run: Callable[..., Awaitable[None]]) -> Command:
    """A release transfer command (hub.release_service): it writes its own binary answer."""

    async def handler(
        service: HubService, identity: Identity, process: asyncssh.SSHServerProcess, args: str
    ) -> str:
        try:
            await run(service.masterfiles, identity.label, process, args)
        except TransferRefused as exc:
            raise CommandError(exc.status, str(exc)) from None
        return ""

    return handler


_TRANSFER: dict[str, Command] = {
    "release-manifest": _transfer(release_manifest),
    "release-files": _transfer(release_files),
}
COMMANDS: dict[Role, dict[str, Command]] = {
    Role.CLIENT: {
        "master": HubService.cmd_master,
        "register": HubService.cmd_register,
        **_TRANSFER,
    },
    Role.PEER: {
        **_TRANSFER,
        "master": HubService.cmd_master,
        "keys": _answer("keys", lambda s: keys_reply(s.keystore).to_json()),
        "masterfiles": _answer("masterfiles", lambda s: masterfiles_reply(s.masterfiles).to_json()),
    },
    Role.UNREGISTERED: {"register": HubService.cmd_register},
}


async def start_hub_service(
    workdir: Path,
    listen: str | tuple[str, int],
    master_info: MasterInfoProvider,
    trust_keys_from: Sequence[Network] = (),
    on_register: RegisterHook | None = None,
    on_contact: ContactHook | None = None,
    name: str = "hub",
) -> asyncssh.SSHAcceptor:
    """Listen on `listen` and serve until the acceptor is closed.

    `listen` is `host:port`, or a (host, port) pair where port 0 lets the system pick one.
    """
    service = HubService(workdir, master_info, trust_keys_from, on_register, on_contact, name)
    host, port = split_address(listen) if isinstance(listen, str) else listen
    acceptor = await asyncssh.listen(
        host,
        port,
        server_factory=service.server,
        process_factory=service.process,
        encoding=None,
        **server_options(host_keys=[service.hub_key]),
    )
    log.info(
        "%s: SSH service on %s:%d, hub key %s",
        name,
        host,
        acceptor.get_port(),
        key_fingerprint(service.hub_key),
    )
    return acceptor


async def start_hub_service_from_config(
    config: HubConfig,
    master_info: MasterInfoProvider,
    on_register: RegisterHook | None = None,
    on_contact: ContactHook | None = None,
) -> asyncssh.SSHAcceptor:
    """The same, with workdir, listen address, trust_keys_from and name from the hub config."""
    return await start_hub_service(
        config.workdir,
        config.listen,
        master_info,
        config.trust_keys_from,
        on_register,
        on_contact,
        config.name,
    )
