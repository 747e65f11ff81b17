"""One round of remediation, run by the master after each finished collection round.

Per rule: what fires (triggers); a new trigger is only pending for the rule's `hold` (as
Prometheus' `for:`), and one that stops firing meanwhile starts over. The breaker judges the
clients that triggered the rule within the hold, not one round: a fleet's agents report one
by one over several rounds, and by the time the first of them is due the breaker has
counted the rest. Then: is the rule paused, is an operator at work on the set (maintenance,
a freeze), is its breaker open; otherwise each due target is decided under the limits,
recorded under its idempotency key before anything runs, and run in the background so a
slow client never holds the next collection round. A skip is said once, not every round,
until it changes: a target's until a run of it starts (a flapping trigger is not news each
time it fires again), a rule's (paused, suppressed, breaker) until the rule runs again.

The pending triggers are this master's own memory: a new master starts every hold afresh,
so it acts later, never sooner, and counts the breaker's share again from what it sees. After
each round it publishes them (hub.remediation.pending) for `hubctl remediation list`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pymongo.errors import PyMongoError

from hub.remediation import limits, sentences
from hub.remediation.actions import ANSWER_GRACE, Actions
from hub.remediation.ledger import ALL_RULES, DONE, DRY_RUN, RUNNING, TIMED_OUT, Ledger, aware
from hub.remediation.ledger import idempotency_key as make_key
from hub.remediation.pending import Waiting, publish
from hub.remediation.rules import CLIENT_TRIGGERS, RemediationSettings, Rule
from hub.remediation.triggers import Facts, Trigger, asked, read_facts, triggered
from hub.store import HubStore

if TYPE_CHECKING:
    from hub.metrics import HubMetrics

log = logging.getLogger("hubcluster.remediation")

EventSink = Callable[..., None]  # node.event(kind, message, **details)
EVENT_KIND = "remediation"
# A running record older than its timeout plus this is one its master never finished (that
# master waited ANSWER_GRACE past the timeout at most).
GIVE_UP_GRACE = ANSWER_GRACE + 2.0


class RemediationEngine:
    def __init__(
        self,
        store: HubStore,
        settings: RemediationSettings,
        hub: str,
        is_master: Callable[[], bool],
        event: EventSink,
        actions: Actions,
        metrics: HubMetrics | None = None,
        check_items: Callable[[], list[str]] | None = None,
    ) -> None:
        self.ledger = Ledger(store)
        self.store = store
        self.settings = settings
        self.hub = hub
        self.is_master = is_master
        self.event = event
        self.actions = actions
        self.metrics = metrics
        self.check_items = check_items
        self._inflight: dict[str, asyncio.Task] = {}
        self._said: dict[tuple[str, str], str] = {}  # (rule, target) -> last skip sentence
        self._published = False
        # rule -> target -> since when it fires without a break (pending until its hold)
        self._pending: dict[str, dict[str, dt.datetime]] = {}
        # rule -> client -> when it last fired (the breaker counts those within the hold)
        self._fired: dict[str, dict[str, dt.datetime]] = {}
        # rule -> this round's triggers still in their hold (what the round publishes)
        self._waiting: dict[str, list[Waiting]] = {}

    # ----- a round --------------------------------------------------------------------------
    async def after_round(self) -> None:
        """Decide and start this round's remediations; never raises into the round."""
        if not self.settings.rules:
            return
        if not self.is_master():
            # Holds run on a master's own rounds: one that comes back starts them afresh.
            self._pending.clear()
            self._fired.clear()
            return
        try:
            await self._round()
        except Exception:  # noqa: BLE001 - a remediation bug must not stop collection
            log.exception("remediation: this round's decisions stopped on an error")

    async def _round(self) -> None:
        try:
            await asyncio.to_thread(self._prepare)
            wants_check = any(r.trigger == "check" for r in self.settings.rules)
            facts = await asyncio.to_thread(
                read_facts, self.store, self.hub, self.check_items if wants_check else None
            )
            states = await asyncio.to_thread(self.ledger.rule_states)
            lookback = max(max(r.window, r.cooldown) for r in self.settings.rules)
            since = facts.now - dt.timedelta(seconds=lookback)
            records = await asyncio.to_thread(self.ledger.since, since)
            running = await asyncio.to_thread(self.ledger.running)
            await asyncio.to_thread(self._give_up_orphans, running, facts.now)
        except PyMongoError as exc:
            log.warning("remediation: the set did not answer, nothing decided: %s", exc)
            return
        count = sum(1 for r in running if not self._orphan(r, facts.now))
        self._waiting = {rule.name: [] for rule in self.settings.rules}
        for rule in self.settings.rules:
            if not self.is_master():
                return
            count = await self._rule_round(rule, facts, states, records, count)
        try:
            await asyncio.to_thread(publish, self.store, self.hub, self._waiting)
        except PyMongoError as exc:
            log.warning("remediation: pending triggers not published: %s", exc)

    def _prepare(self) -> None:
        if not self._published:
            self.ledger.ensure_indexes()
            self.ledger.publish_rules({r.name: r.summary() for r in self.settings.rules})
            self._published = True

    def _orphan(self, record: dict[str, Any], now: dt.datetime) -> bool:
        """A running record no master will finish: not ours, and past the action timeout."""
        if record["_id"] in self._inflight:
            return False
        timeout = record.get("timeout")
        if not isinstance(timeout, int | float):  # a record from before timeouts were kept
            timeout = self.settings.timeout_of(str(record.get("rule")))
        return (now - aware(record["started"])).total_seconds() > timeout + GIVE_UP_GRACE

    def _give_up_orphans(self, running: list[dict[str, Any]], now: dt.datetime) -> None:
        for record in running:
            if not self._orphan(record, now):
                continue
            if self.ledger.give_up(record["_id"]):
                by = str(record.get("by") or "a master")
                self.event(
                    EVENT_KIND,
                    sentences.gave_up(str(record.get("name")), by),
                    rule=record.get("rule"),
                    target=record.get("target"),
                    key=record["_id"],
                )

    async def _rule_round(
        self,
        rule: Rule,
        facts: Facts,
        states: dict[str, dict[str, Any]],
        records: list[dict[str, Any]],
        running: int,
    ) -> int:
        fired = triggered(rule, facts, self.hub)
        due, in_hold = self._hold(rule, fired, facts)
        requests, unknown = asked(rule, facts)
        for ask_id in unknown:
            self.event(EVENT_KIND, f"ignored {ask_id}: no such client or hub", rule=rule.name)
            await asyncio.to_thread(self.ledger.drop_ask, ask_id)
        if not fired and not requests:
            return running
        blocked = self._rule_blocked(rule, facts, states)
        if blocked is None and rule.trigger in CLIENT_TRIGGERS and facts.hosts:
            share = 100.0 * in_hold / len(facts.hosts)
            if share > rule.breaker_percent:
                blocked = await self._open_breaker(rule, share)
        for t in fired:
            if t not in due:
                self._skipped(rule, limits.HOLD)
        due += requests
        if not due:
            return running  # all pending: nothing would run this round, so nothing to say
        if blocked is not None:
            reason, sentence = blocked
            self._say(rule.name, "*", "*", sentence)
            for _ in due:
                self._skipped(rule, reason)
            await self._drop_asks(requests)
            return running
        self._said.pop((rule.name, "*"), None)  # unblocked: the next block is news again
        fired = due
        for t in fired:
            key = make_key(rule.name, t.target, t.evidence)
            mine = [
                r for r in records if r.get("rule") == rule.name and r.get("target") == t.target
            ]
            decision = limits.decide(
                rule, t, key, mine, running, self.settings.max_concurrent, facts.now, self.hub
            )
            if not decision.run:
                self._skipped(rule, decision.reason or "")
                if not decision.quiet:
                    self._say(rule.name, t.target, t.name, decision.sentence)
                continue
            started = await self._start(rule, t, key, facts)
            if started is not None:
                records.append(started)
                running += 0 if rule.dry_run else 1
        await self._drop_asks(requests)
        return running

    def _hold(self, rule: Rule, fired: list[Trigger], facts: Facts) -> tuple[list[Trigger], int]:
        """The triggers due to act (fired without a break for the rule's hold), and how many
        of the fleet's clients fired within the hold (this round included)."""
        hold = rule.hold or 0.0
        pending = self._pending.setdefault(rule.name, {})
        last = self._fired.setdefault(rule.name, {})
        now = facts.now
        for target in set(pending) - {t.target for t in fired}:
            del pending[target]  # it stopped firing: a new trigger starts a new hold
        for t in fired:
            pending.setdefault(t.target, now)
            last[t.target] = now
        hold_for = dt.timedelta(seconds=hold)
        horizon = now - hold_for
        for target in [k for k, when in last.items() if when < horizon]:
            del last[target]
        due = [t for t in fired if (now - pending[t.target]).total_seconds() >= hold]
        self._waiting[rule.name] = [
            Waiting(t.target, t.name, pending[t.target], pending[t.target] + hold_for)
            for t in fired
            if t not in due
        ]
        return due, len(set(last) & set(facts.hosts))

    async def _open_breaker(self, rule: Rule, share: float) -> tuple[str, str]:
        sentence = sentences.breaker_opened(
            rule.name, share, rule.breaker_percent, rule.hold or 0.0
        )
        opened = await asyncio.to_thread(
            self.ledger.open_breaker, rule.name, share, rule.breaker_percent, sentence
        )
        if opened:
            self.event(EVENT_KIND, sentence, rule=rule.name, share=share)
            self._said[(rule.name, "*")] = _gist(sentence)
        if self.metrics is not None:
            self.metrics.remediation_breaker(rule.name, True)
        return limits.BREAKER, sentence

    def _rule_blocked(
        self, rule: Rule, facts: Facts, states: dict[str, dict[str, Any]]
    ) -> tuple[str, str] | None:
        for name in (ALL_RULES, rule.name):
            state = states.get(name) or {}
            if state.get("paused"):
                who = state.get("paused_by") or "an operator"
                scope = "all rules" if name == ALL_RULES else "the rule"
                return limits.PAUSED, sentences.rule_suppressed(
                    rule.name, f"{scope} paused by {who}"
                )
        if facts.suppressed:
            return limits.SUPPRESSED, sentences.rule_suppressed(rule.name, facts.suppressed)
        breaker = (states.get(rule.name) or {}).get("breaker") or {}
        if breaker.get("open"):
            return limits.BREAKER, sentences.rule_suppressed(
                rule.name,
                f"breaker open, waiting for hubctl remediation reset-breaker {rule.name}",
            )
        return None

    async def _drop_asks(self, requests: list[Trigger]) -> None:
        for t in requests:
            await asyncio.to_thread(self.ledger.drop_ask, t.evidence.removeprefix("ask "))

    # ----- running one ----------------------------------------------------------------------
    async def _start(self, rule: Rule, t: Trigger, key: str, facts: Facts) -> dict[str, Any] | None:
        now = dt.datetime.now(dt.UTC)
        record = {
            "_id": key,
            "rule": rule.name,
            "target": t.target,
            "name": t.name,
            "evidence": t.evidence,
            "reason": t.reason,
            "action": rule.action,
            "status": DRY_RUN if rule.dry_run else RUNNING,
            "started": now,
            "finished": now if rule.dry_run else None,
            "by": self.hub,
            "asked_by": t.asked_by,
            "timeout": self.settings.timeout_of(rule.name),  # for any master's give-up
        }
        try:
            # Majority-acknowledged BEFORE anything runs: the idempotency key's whole point.
            held = await asyncio.to_thread(self.ledger.claim, record)
        except PyMongoError as exc:
            log.warning("remediation of %s not recorded, so not run: %s", t.name, exc)
            return None
        if held is not None:
            by = str(held.get("by") or "a master")
            self._skipped(rule, limits.RECORDED)
            self._say(rule.name, t.target, t.name, sentences.recorded_already(t.name, by, t.reason))
            return None
        self._said.pop((rule.name, t.target), None)
        if rule.dry_run:
            self._ran(rule, "dry_run")
            self.event(
                EVENT_KIND,
                sentences.would_run(rule.action, t.name, t.reason, rule.command),
                rule=rule.name,
                target=t.name,
                key=key,
                dry_run=True,
            )
            return record
        host = facts.hosts.get(t.target)
        self._inflight[key] = asyncio.create_task(self._run(rule, t, key, host))
        return record

    async def _run(self, rule: Rule, t: Trigger, key: str, host: dict[str, Any] | None) -> None:
        try:
            status, result = await self.actions.act(rule, t, key, host)
            if status == DONE:
                sentence = sentences.ran(rule.action, t.name, t.reason, rule.command)
            elif status == TIMED_OUT:
                sentence = sentences.timed_out(rule.action, t.name, t.reason, result, rule.command)
            else:
                sentence = sentences.failed(rule.action, t.name, t.reason, result, rule.command)
            self._ran(rule, {DONE: "ok", TIMED_OUT: "timed_out"}.get(status, "failed"))
            try:
                await asyncio.to_thread(self.ledger.finish, key, status, result)
            except PyMongoError as exc:
                log.warning("remediation of %s ran, but its end was not recorded: %s", t.name, exc)
            self.event(EVENT_KIND, sentence, rule=rule.name, target=t.name, key=key, result=result)
        finally:
            self._inflight.pop(key, None)

    # ----- saying it once -------------------------------------------------------------------
    def _say(self, rule: str, target: str, name: str, sentence: str) -> None:
        gist = _gist(sentence)
        if self._said.get((rule, target)) == gist:
            return
        self._said[(rule, target)] = gist
        self.event(EVENT_KIND, sentence, rule=rule, target=name)

    def _skipped(self, rule: Rule, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.remediation_skipped(rule.name, reason)

    def _ran(self, rule: Rule, result: str) -> None:
        if self.metrics is not None:
            self.metrics.remediation_ran(rule.name, result)

    # ----- every hub ------------------------------------------------------------------------
    def refresh_metrics(self) -> None:
        """Breaker gauges from the set, on every hub (a standby's scrape says it too)."""
        if self.metrics is None or not self.settings.rules:
            return
        states = self.ledger.rule_states()
        for rule in self.settings.rules:
            breaker = (states.get(rule.name) or {}).get("breaker") or {}
            self.metrics.remediation_breaker(rule.name, bool(breaker.get("open")))

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)


def _gist(sentence: str) -> str:
    """What a skip sentence says, without its figures (a cool-down's seconds tick)."""
    return re.sub(r"[0-9]+", "#", sentence)
