"""`client-agent bootstrap HUB`: make this client's keys, trust the hub, register, fetch policy.

The hub key is checked before anything is sent: against the operator's `--hub-fingerprint`,
or accepted on first use when the operator allows it (never silently replacing a pin
already held). Only a registration the hub accepted leaves a pinned key behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from client_agent.config import AgentConfig
from client_agent.policy_update import PolicyUpdateError, UpdateResult, update_policy
from client_agent.state import ClientState, HubList
from hubcluster.exit_codes import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE
from hubcluster.hub_session import (
    HubError,
    HubKeyMismatch,
    HubRefused,
    HubUnreachable,
    fetch_hub_key,
    hub_endpoint,
    open_hub,
)
from hubcluster.keys import KeyFileError, key_fingerprint, normalize_fingerprint
from hubcluster.messages import RegisterRequest

log = logging.getLogger("hubcluster.agent")

# Exit statuses of bootstrap (hubcluster/exit_codes.py): the hub said no (or is not the hub
# we expect) 1, the command was given wrongly 2, the hub could not be reached 3.
EXIT_REFUSED = EXIT_FAILED


class BootstrapError(Exception):
    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class BootstrapResult:
    hub: str
    hub_fingerprint: str
    client_fingerprint: str
    new_key: bool
    policy_server: str
    hubs: list[str]
    release: str | None = None
    update: UpdateResult | None = None
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        policy = "no release published yet"
        if self.update is not None:
            policy = f"policy release {self.release} ({self.update.files_fetched} files)"
        elif self.release:
            policy = f"policy release {self.release} NOT fetched"
        text = (
            f"bootstrapped to {self.hub} (hub key {self.hub_fingerprint}); client key "
            f"{self.client_fingerprint} registered; policy server {self.policy_server}; {policy}"
        )
        return text + "".join(f"; {p}" for p in self.problems)


def _hub_error(exc: HubError) -> BootstrapError:
    if isinstance(exc, HubUnreachable):
        return BootstrapError(EXIT_UNREACHABLE, str(exc))
    return BootstrapError(EXIT_REFUSED, str(exc))


async def bootstrap(
    config: AgentConfig,
    hub: str,
    hub_fingerprint: str | None = None,
    trust_on_first_use: bool = False,
) -> BootstrapResult:
    """Bootstrap the client in `config.workdir` to `hub` (`host[:port]`)."""
    try:
        host, port = hub_endpoint(hub)
    except ValueError as exc:
        raise BootstrapError(EXIT_USAGE, f"hub address: {exc}") from None
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if (hub_fingerprint is None) == (not trust_on_first_use):
        raise BootstrapError(
            EXIT_USAGE, "give exactly one of --hub-fingerprint SHA256:... or --trust-on-first-use"
        )
    wanted = None
    if hub_fingerprint is not None:
        try:
            wanted = normalize_fingerprint(hub_fingerprint)
        except KeyFileError as exc:
            raise BootstrapError(EXIT_USAGE, f"--hub-fingerprint: {exc}") from None
    state = ClientState(config.workdir)
    timeout = config.connect_timeout
    try:
        presented = await fetch_hub_key(address, timeout)
    except HubError as exc:
        raise _hub_error(exc) from None
    seen = key_fingerprint(presented)
    if wanted is not None and seen != wanted:
        raise BootstrapError(
            EXIT_REFUSED,
            f"hub {address} presented key {seen}, but --hub-fingerprint is {wanted}: REFUSING "
            "to bootstrap (a man in the middle, or the wrong fingerprint)",
        )
    if wanted is None:
        try:
            pinned = state.pinned_hub_key()
        except KeyFileError:
            pinned = None  # an unreadable pin protects nothing; first use replaces it
        if pinned is not None and pinned.public_data != presented.public_data:
            raise BootstrapError(
                EXIT_REFUSED,
                f"hub {address} presented key {seen}, but this client already pins "
                f"{key_fingerprint(pinned)}: REFUSING to trust a new key on first use; "
                "if the hub was re-keyed, bootstrap with --hub-fingerprint",
            )
        log.warning("trusting hub key %s of %s on first use", seen, address)

    client_key, _ = state.ensure_key_pair()
    request = RegisterRequest(config.host_name, config.report_port)
    try:
        async with open_hub(address, client_key, presented, timeout) as session:
            reply = await session.register(request)
    except HubRefused as exc:
        raise BootstrapError(EXIT_REFUSED, f"registration refused: {exc}") from None
    except HubError as exc:
        raise _hub_error(exc) from None
    state.pin_hub_key(presented)

    result = BootstrapResult(
        hub=address,
        hub_fingerprint=seen,
        client_fingerprint=key_fingerprint(client_key),
        new_key=reply.new_key,
        policy_server=address,
        hubs=[address],
    )
    # A new session: the registration made this key a client, which the old one was not.
    try:
        async with open_hub(address, client_key, presented, timeout) as session:
            info = await session.master()
            result.policy_server = info.master or address
            result.hubs = list(info.hubs) or [address]
            state.write_hubs(HubList(result.hubs, None))
            state.write_policy_server(result.policy_server)
            result.release = info.release
            if info.release:
                result.update = await update_policy(state, session, info.release, info.generation)
    except HubKeyMismatch as exc:
        raise _hub_error(exc) from None
    except (HubError, PolicyUpdateError) as exc:
        result.problems.append(f"{exc}; the next run will retry")
    if not state.policy_server_path.exists():
        state.write_policy_server(result.policy_server)
        state.write_hubs(HubList(result.hubs, None))
    return result
