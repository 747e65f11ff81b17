"""One hub, its parts wired together: SSH service, master watch, collector, peer sync.

Each step logs one sentence saying what it decided, in the manner of Patroni's HA loop:
"hub2 became master (member h2:27017 is primary); collecting from the cursors left".
Every part runs under hub.supervisor, which restarts what dies or stalls and publishes it
in the hub's state; blocking database and file-system calls run in threads, never on the
event loop the master watch and the SSH service share.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo.errors import PyMongoError

import hubcluster
from hub import release_generations as generations
from hub.collector_pool import CollectorPool
from hub.collector_worker import WorkerSpec
from hub.compliance_history import ComplianceRecorder
from hub.config import HubConfig
from hub.events import EVENTS, now_utc
from hub.hub_directory import HubDirectory
from hub.keystore import KeyStore
from hub.master_watch import MasterState, MasterWatch
from hub.masterfiles import current_release_id, current_release_since
from hub.metrics import HubMetrics
from hub.mongo import connect, connect_member, current_access
from hub.peer_sync import apply_db_revocations, sync_with_peers
from hub.portal.server import PortalServer
from hub.release_generations import served_generation
from hub.remediation.wiring import remediation_engine, upkeep
from hub.ssh_service import HostRecord, start_hub_service_from_config
from hub.store import HubStore
from hub.supervisor import Supervisor
from hub.write_buffer import WriteBuffer
from hubcluster.config_check import split_address
from hubcluster.keys import load_private_key
from hubcluster.messages import MasterInfo

log = logging.getLogger("hubcluster.hubd")

FLUSH_SECONDS = 2.0
# The master watch looks four times a second; this long without a look is a stall.
WATCH_STALL_SECONDS = 5.0
# The SSH service proves it still answers by showing its banner to hubd itself this often.
SSH_PROBE_SECONDS = 5.0
SSH_PROBE_TIMEOUT = 5.0
# How soon a hub notices a new release generation (and so how long a publish waits).
RELEASE_LOOK_SECONDS = 1.0


class HubNode:
    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.name = config.name
        self.client = connect(config.mongo_uri, timeout=5.0)
        self.store = HubStore(self.client, config.max_staleness)
        self.events: WriteBuffer[dict[str, Any]] = WriteBuffer(
            "events", lambda docs: self.store.db[EVENTS].insert_many(docs, ordered=True)
        )
        self.seen: WriteBuffer[tuple[str, dt.datetime]] = WriteBuffer("last-seen", self._write_seen)
        self.supervisor = Supervisor(self.name)
        self.watch = MasterWatch(
            config.mongo_uri, config.me.mongo, self._on_master_change, self._watch_failed
        )
        self.keystore = KeyStore(config.ppkeys)
        self.hub_key = load_private_key(self.keystore.hub_private_key_path)
        # The collector writes through its own member only, without retries: a write that
        # reaches a member that is not primary fails instead of following the new primary,
        # so a hub that lost mastership stops at its next write, not at its next look.
        self.collector_client = connect_member(
            config.mongo_uri, config.me.mongo, timeout=5.0, retryWrites=False
        )
        # Its pulls and their writes run in worker processes (hub.collector_pool); each
        # worker has its own client to the same member, with the same identity.
        self.collector = CollectorPool(
            HubStore(self.collector_client, config.max_staleness),
            config.collector,
            self.name,
            self.hub_key,
            self.keystore.get,
            lambda: self.watch.state.is_master,
            WorkerSpec(
                hub=self.name,
                uri=config.mongo_uri,
                member=config.me.mongo,
                settings=config.collector,
                hub_key_path=self.keystore.hub_private_key_path,
                ppkeys=config.ppkeys,
                access=config.mongo_access or current_access(),
                max_staleness=config.max_staleness,
            ),
        )
        self.metrics = HubMetrics(self.name)  # served at the portal's /metrics
        self.collector.metrics = self.metrics
        self.compliance = ComplianceRecorder(self.store.db)
        self._round: asyncio.Task | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._collect_soon = asyncio.Event()
        self._sync_soon = asyncio.Event()
        self.collect_beat = time.monotonic()
        self.overruns = 0  # rounds in a row that took longer than the interval
        self.last_overrun = 0.0
        # Published: a rolling change tells this process from the one it replaced.
        self.started = time.time()
        self._guarded_collect = self.supervisor.guarded(
            "collection round", self._collect, config.collector.interval
        )
        self.supervisor.on_stall("collection round", self.collect_now)
        self.ssh_alive = time.monotonic()  # when the SSH service last showed its banner
        self.ssh_probe_seconds = SSH_PROBE_SECONDS
        self.ssh_port: int | None = None
        # The hub list follows the set's members: a replaced hub drops out, its successor
        # joins once it may be elected.
        self.directory = HubDirectory(self.client, self.store, config.hubs)
        self.remediation = remediation_engine(self)

    # ----- events and buffered writes -----------------------------------------------------
    def event(self, kind: str, message: str, **details: Any) -> None:
        log.info("%s", message)
        self.events.add(
            {
                "time": now_utc(),
                "kind": kind,
                "message": message,
                "by": self.name,
                "details": details,
            }
        )

    async def _on_contact(self, sha: str, address: str) -> None:
        self.seen.add((sha, now_utc()))

    async def _on_register(self, record: HostRecord) -> None:
        await asyncio.to_thread(
            self.store.record_host,
            record.sha,
            record.hostname,
            record.address,
            record.report_port,
            self.name,
        )

    async def master_info(self) -> MasterInfo:
        """What the SSH service tells clients: the master's service and every hub in order."""
        primary = self.watch.state.primary
        entry = self.config.hub_for_member(primary) if primary else None
        reason = None
        if entry is None:
            reason = "the replica set has no primary" if not primary else f"{primary} is no hub"
        return MasterInfo(
            master=entry.service if entry else None,
            hubs=[h.service for h in self.config.hubs],
            release=current_release_id(self.config.masterfiles),
            reason=reason,
        )

    def _write_seen(self, items: list[tuple[str, dt.datetime]]) -> None:
        latest: dict[str, dt.datetime] = {}
        for sha, when in items:
            latest[sha] = max(when, latest.get(sha, when))
        self.store.record_last_seen(self.name, latest)

    async def _flush(self) -> None:
        await asyncio.to_thread(self.events.flush)
        await asyncio.to_thread(self.seen.flush)

    # ----- master changes -------------------------------------------------------------
    def _watch_failed(self, words: str) -> None:
        self.supervisor.note("master watch", f"master watch: a look failed ({words})")

    def hub_of(self, member: str | None) -> str | None:
        entry = self.config.hub_for_member(member) if member else None
        return entry.name if entry else member

    async def _on_master_change(self, old: MasterState, new: MasterState) -> None:
        if new.is_master and not old.is_master:
            self.event(
                "master",
                f"{self.name} became master (member {self.config.me.mongo} is primary); "
                "collecting from the cursors left",
                hub=self.name,
                previous=self.hub_of(old.primary),
            )
            try:
                await asyncio.to_thread(self.store.ensure_indexes)
            except PyMongoError as exc:
                log.warning("could not ensure indexes: %s", exc)
            self.collect_now()
        elif old.is_master and not new.is_master:
            if self._round is not None and not self._round.done():
                self._round.cancel()
            now = self.hub_of(new.primary) or "nobody"
            self.event(
                "collector", f"{self.name} stopped collecting; master is now {now}", hub=self.name
            )

    # ----- collection -----------------------------------------------------------------
    def collect_now(self) -> None:
        self._collect_soon.set()

    async def _collect(self) -> None:
        if not self.watch.state.is_master:
            return
        self._round = asyncio.create_task(self.collector.run_round())
        try:
            figures = await self._round
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # hubd is stopping (or restarting collection), not just this round
            log.info("%s cancelled its round: no longer master", self.name)
        else:
            self.compliance.after_round(figures)  # the portal's compliance over time
            await self.remediation.after_round()  # hub.remediation: only the master acts
        await self._publish_state()

    async def _collect_rounds(self) -> None:
        """A round every interval; one that overruns it is followed by the next at once.

        Our own loop rather than a scheduler job: under load a round longer than the interval
        is normal, and deserves one line with figures, not a "skipped" warning per miss.
        """
        interval = self.config.collector.interval
        while True:
            self.collect_beat = started = time.monotonic()
            self._collect_soon.clear()
            await self._guarded_collect()
            took = time.monotonic() - started
            self.collect_beat = time.monotonic()
            if took > interval:
                self._overran(took, interval)
                continue
            self.overruns = 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._collect_soon.wait(), interval - took)

    def _overran(self, took: float, interval: float) -> None:
        self.overruns += 1
        self.last_overrun = took
        self.metrics.round_overran()
        log.warning(
            "round took %.1f s, longer than the %g s interval; next round starts now%s",
            took,
            interval,
            f" ({self.overruns} in a row)" if self.overruns > 1 else "",
        )

    # ----- peer sync ------------------------------------------------------------------
    async def _peer_sync(self) -> None:
        try:
            revoked = await asyncio.to_thread(apply_db_revocations, self.store, self.keystore)
        except PyMongoError as exc:
            revoked = []
            log.warning("peer sync: revocations in the database not read: %s", exc)
        for sha in revoked:
            log.info("revoked key %s here, as the database says", sha[:12])
        entry = self.config.hub_for_member(self.watch.state.primary or "")
        master = entry.service if entry else None
        try:
            target = await asyncio.to_thread(generations.latest, self.store)
        except PyMongoError as exc:
            # Without the set's word on the newest generation, mirroring could go back.
            log.warning("peer sync: release generation not read (%s); masterfiles kept", exc)
            target, master = None, None
        result = await sync_with_peers(
            self.config,
            self.keystore,
            self.hub_key,
            master,
            self.config.collector.connect_timeout,
            target,
        )
        ok = not result.peers_failed and not result.mirror_failed
        self.metrics.peer_synced(result.seconds, ok)
        log.info("peer sync: %s", result.summary())
        if result.release_after != result.release_before:
            await self._publish_state()

    async def _look_for_release(self) -> None:
        """Sync now when the set names a newer release generation than this hub holds: a
        publish waits for a majority of hubs to take it."""
        try:
            newest = await asyncio.to_thread(generations.latest, self.store)
        except PyMongoError:
            return  # the next look, or the next sync, will tell (the sync logs why)
        mine = await asyncio.to_thread(generations.held, self.config.masterfiles)
        if newest is None or (mine is not None and mine.number >= newest.number):
            return
        self._sync_soon.set()

    # ----- the cluster's members ---------------------------------------------------------
    async def _refresh_hubs(self) -> None:
        hubs = await asyncio.to_thread(self.directory.look, self.config.me)
        if hubs is not None and hubs != self.config.hubs:
            names = ", ".join(h.name for h in hubs)
            log.info("%s: the hubs are now %s, as the replica set's members say", self.name, names)
            self.config = dataclasses.replace(self.config, hubs=hubs)

    # ----- state for `hubctl status` and `hubctl check` ----------------------------------
    def state_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "role": "master" if self.watch.state.is_master else "standby",
            "member": self.config.me.mongo,
            "service": self.config.me.service,
            # Readers judge the hub silent after a few of these (hub.hub_roles).
            "state_interval": self.config.state_interval,
            # The build running and since when: the rolling upgrade waits on both.
            "version": hubcluster.__version__,
            "started": round(self.started, 3),
        }
        fields["release"] = current_release_id(self.config.masterfiles)
        fields["generation"] = served_generation(self.config.masterfiles, fields["release"])
        fields["release_since"] = current_release_since(self.config.masterfiles)
        fields["keys"] = len(self.keystore.keys())
        # What hubctl status shows, and what makes hubctl check CRITICAL (hub.health_check).
        fields["problems"] = self.supervisor.problems()
        fields["parts"] = self.supervisor.report()
        fields["round_overruns"] = {
            "in_a_row": self.overruns,
            "last_seconds": round(self.last_overrun, 1),
            "interval": self.config.collector.interval,
        }
        running = self._round is not None and not self._round.done()
        fields["round_progress"] = dict(self.collector.progress) if running else None
        last = self.collector.last_round
        if last is not None and last.finished is not None:
            fields["last_round"] = {"finished": last.finished, "summary": last.summary()}
        return fields

    async def _publish_state(self) -> None:
        try:
            # The fields too: counting a fleet's key files is file-system work.
            await asyncio.to_thread(
                lambda: self.store.set_hub_state(self.name, **self.state_fields())
            )
        except PyMongoError as exc:
            log.warning("hub state not published (status and check show it stale): %s", exc)

    # ----- lifecycle -------------------------------------------------------------------
    def schedule(self) -> None:
        """Hubd's periodic jobs, each a supervised loop of its own.

        A loop starts its next run an interval after the last began, or at once when that run
        took longer: an overrun never piles up, and never costs a "skipped" warning.
        """
        guard, sup = self.supervisor.guarded, self.supervisor
        jobs = (
            ("peer sync", self._peer_sync, self.config.sync_interval, self._sync_soon),
            ("release watch", self._look_for_release, RELEASE_LOOK_SECONDS, None),
            ("buffered writes", self._flush, FLUSH_SECONDS, None),
            ("state publishing", self._publish_state, self.config.state_interval, None),
            ("hub list", self._refresh_hubs, self.config.state_interval, None),
            (
                "remediation upkeep",
                functools.partial(upkeep, self),
                self.config.state_interval,
                None,
            ),
        )
        for name, job, interval, wake in jobs:
            run = guard(name, job, interval)
            sup.keep_running(name, functools.partial(self._every, run, interval, wake))
            if wake is not None:
                sup.on_stall(name, wake.set)

    @staticmethod
    async def _every(
        run: Callable[[], Awaitable[None]], interval: float, wake: asyncio.Event | None
    ) -> None:
        while True:
            started = time.monotonic()
            if wake is not None:
                wake.clear()
            await run()
            pause = max(0.0, interval - (time.monotonic() - started))
            if wake is None:
                await asyncio.sleep(pause)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), pause)

    async def _serve_ssh(self) -> None:
        """The SSH service, proving every few seconds that it still answers."""
        acceptor = await start_hub_service_from_config(
            self.config, self.master_info, self._on_register, self._on_contact
        )
        self.ssh_port = acceptor.get_port()
        self.ssh_alive = time.monotonic()
        try:
            while True:
                await asyncio.sleep(self.ssh_probe_seconds)
                await self._probe_ssh()
                self.ssh_alive = time.monotonic()
        finally:
            acceptor.close()
            await acceptor.wait_closed()

    async def _probe_ssh(self) -> None:
        host, _ = split_address(self.config.listen)
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        async with asyncio.timeout(SSH_PROBE_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, self.ssh_port)
            try:
                line = await reader.readline()
            finally:
                writer.close()
        if not line.startswith(b"SSH-2.0-"):
            raise ConnectionError(f"the SSH service answered {line[:40]!r}, not an SSH banner")

    async def run(self) -> None:
        """Serve until request_stop(); then stop every part, in the reverse order."""
        sup = self.supervisor
        sup.keep_running(
            "SSH service", self._serve_ssh, lambda: self.ssh_alive, 3 * self.ssh_probe_seconds
        )
        sup.keep_running(
            "master watch",
            lambda: self.watch.run(self._stop),
            lambda: self.watch.last_probe,
            WATCH_STALL_SECONDS,
        )
        settings = self.config.collector
        sup.keep_running(
            "collection",
            self._collect_rounds,
            lambda: self.collect_beat,
            max(10 * settings.interval, 10 * settings.host_timeout),
        )
        # The portal (web console, health endpoints) is one more supervised loop.
        portal = PortalServer(self) if self.config.portal.enabled else None
        if portal is not None:
            sup.keep_running("portal", portal.serve)
        supervising = asyncio.create_task(sup.run(self._stop))
        self.schedule()
        log.info(
            "%s is up: service %s, member %s",
            self.name,
            self.config.me.service,
            self.config.me.mongo,
        )
        try:
            await self._stop.wait()
        finally:
            if self._round is not None:
                self._round.cancel()
            self._stop.set()
            await asyncio.gather(supervising, return_exceptions=True)
            await self.collector.close()
            await self.remediation.close()
            await self._flush()
            self.watch.close()
            self.client.close()
            self.collector_client.close()
            if portal is not None:
                portal.close()
            log.info("%s stopped", self.name)

    def request_stop(self) -> None:
        self._stop.set()
