"""One hub, its parts wired together: SSH service, master watch, collector, peer sync.

Each step logs one sentence saying what it decided, in the manner of Patroni's HA loop:
"hub2 became master (member h2:27017 is primary); collecting from the cursors left".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pymongo.errors import PyMongoError

from hub.collector import Collector
from hub.config import HubConfig
from hub.events import EVENTS, now_utc
from hub.keystore import KeyStore
from hub.master_watch import MasterState, MasterWatch
from hub.masterfiles import current_release_id, current_release_since
from hub.mongo import connect, connect_member
from hub.peer_sync import apply_db_revocations, sync_with_peers
from hub.ssh_service import HostRecord, start_hub_service_from_config
from hub.store import HubStore
from hub.write_buffer import WriteBuffer
from hubcluster.keys import load_private_key
from hubcluster.messages import MasterInfo

log = logging.getLogger("hubcluster.hubd")

FLUSH_SECONDS = 2.0
STATE_SECONDS = 15.0


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
        self.watch = MasterWatch(config.mongo_uri, config.me.mongo, self._on_master_change)
        self.scheduler = AsyncIOScheduler()
        self.keystore = KeyStore(config.ppkeys)
        self.hub_key = load_private_key(self.keystore.hub_private_key_path)
        # The collector writes through its own member only, without retries: a write that
        # reaches a member that is not primary fails instead of following the new primary,
        # so a hub that lost mastership stops at its next write, not at its next look.
        self.collector_client = connect_member(
            config.mongo_uri, config.me.mongo, timeout=5.0, retryWrites=False
        )
        self.collector = Collector(
            HubStore(self.collector_client, config.max_staleness),
            config.collector,
            self.name,
            self.hub_key,
            self.keystore.get,
            lambda: self.watch.state.is_master,
        )
        self._round: asyncio.Task | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

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
        job = self.scheduler.get_job("collect")
        if job is not None:
            job.modify(next_run_time=dt.datetime.now(dt.UTC))

    async def _collect(self) -> None:
        if not self.watch.state.is_master:
            return
        self._round = asyncio.create_task(self.collector.run_round())
        try:
            await self._round
        except asyncio.CancelledError:
            log.info("%s cancelled its round: no longer master", self.name)
        await self._publish_state()

    # ----- peer sync ------------------------------------------------------------------
    async def _peer_sync(self) -> None:
        try:
            revoked = await asyncio.to_thread(apply_db_revocations, self.store, self.keystore)
        except PyMongoError as exc:
            revoked = []
            log.debug("revocations not read: %s", exc)
        for sha in revoked:
            log.info("revoked key %s here, as the database says", sha[:12])
        entry = self.config.hub_for_member(self.watch.state.primary or "")
        master = entry.service if entry else None
        result = await sync_with_peers(
            self.config, self.keystore, self.hub_key, master, self.config.collector.connect_timeout
        )
        log.info("peer sync: %s", result.summary())
        if result.release_after != result.release_before:
            await self._publish_state()

    # ----- state for `hubctl status` and `hubctl check` ----------------------------------
    def state_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "role": "master" if self.watch.state.is_master else "standby",
            "member": self.config.me.mongo,
            "service": self.config.me.service,
        }
        fields["release"] = current_release_id(self.config.masterfiles)
        fields["release_since"] = current_release_since(self.config.masterfiles)
        fields["keys"] = len(self.keystore.keys())
        running = self._round is not None and not self._round.done()
        fields["round_progress"] = dict(self.collector.progress) if running else None
        last = self.collector.last_round
        if last is not None and last.finished is not None:
            fields["last_round"] = {"finished": last.finished, "summary": last.summary()}
        return fields

    async def _publish_state(self) -> None:
        try:
            await asyncio.to_thread(self.store.set_hub_state, self.name, **self.state_fields())
        except PyMongoError as exc:
            log.debug("hub state not published: %s", exc)

    # ----- lifecycle -------------------------------------------------------------------
    def schedule(self) -> None:
        s = self.scheduler
        s.add_job(
            self._collect,
            "interval",
            seconds=self.config.collector.interval,
            id="collect",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        s.add_job(
            self._peer_sync,
            "interval",
            seconds=self.config.sync_interval,
            id="sync",
            max_instances=1,
            coalesce=True,
            next_run_time=dt.datetime.now(dt.UTC),
        )
        s.add_job(
            self._flush,
            "interval",
            seconds=FLUSH_SECONDS,
            id="flush",
            max_instances=1,
            coalesce=True,
        )
        s.add_job(
            self._publish_state,
            "interval",
            seconds=STATE_SECONDS,
            id="state",
            max_instances=1,
            coalesce=True,
            next_run_time=dt.datetime.now(dt.UTC),
        )
        s.start()

    async def run(self) -> None:
        """Serve until request_stop(); then stop every part, in the reverse order."""
        acceptor = await start_hub_service_from_config(
            self.config, self.master_info, self._on_register, self._on_contact
        )
        self.schedule()
        watch = asyncio.create_task(self.watch.run(self._stop))
        log.info(
            "%s is up: service %s, member %s",
            self.name,
            self.config.me.service,
            self.config.me.mongo,
        )
        try:
            await self._stop.wait()
        finally:
            self.scheduler.shutdown(wait=False)
            if self._round is not None:
                self._round.cancel()
            await asyncio.gather(watch, return_exceptions=True)
            acceptor.close()
            await acceptor.wait_closed()
            await self.collector.close()
            await self._flush()
            self.watch.close()
            self.client.close()
            self.collector_client.close()
            log.info("%s stopped", self.name)

    def request_stop(self) -> None:
        self._stop.set()
