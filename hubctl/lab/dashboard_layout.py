"""Fitting the lab dashboard to the terminal it is drawn on.

An operator starts `hubctl lab up` in whatever terminal they have, often 80x24, and needs two
things from it above all: the HUBCTL_MONGO_URI to export in another shell, and whether (and
how fast) the last failover happened. Those always show; the rest is added in order of use
while it fits, and a taller or wider terminal shows more clients per column and per row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.table import Table as Grid
from rich.text import Text

from hubctl.output import Table, ago

# Live keeps the cursor on the line below the last one it draws.
CURSOR_LINE = 1
# From this width the hubs table also shows each hub's service, release, keys and age.
WIDE = 116


def shell_export(name: str, value: str, width: int) -> list[str]:
    """`export NAME='value'` in lines of at most `width` cells that a shell reads as one.

    A URI with three members does not fit 80 columns, and a line folded by the terminal
    pastes as it is, so long values are cut after a comma (or anywhere, if a piece is still
    too long) into quoted pieces joined by a backslash-newline: the shell concatenates them.
    """
    whole = f"export {name}='{value}'"
    if len(whole) <= width or width < len(name) + 12:  # too narrow for even one piece
        return [whole]
    pieces: list[str] = []
    for part in value.split(","):
        pieces.append(part + ",")
    pieces[-1] = pieces[-1][:-1]
    lines: list[str] = []
    current = f"export {name}='"
    for piece in pieces:
        room = width - len(current) - 2  # the closing quote and the backslash
        if len(piece) <= room:
            current += piece
            continue
        if current.endswith("'"):  # nothing in this line yet: the piece itself is too long
            current += piece[:room]
            piece = piece[room:]
        lines.append(current + "'\\")
        while len(piece) > width - 3:
            lines.append("'" + piece[: width - 3] + "'\\")
            piece = piece[width - 3 :]
        current = "'" + piece
    lines.append(current + "'")
    return lines


class Dashboard:
    """One frame of the lab dashboard, laid out for the console it is printed on."""

    def __init__(self, snap: dict) -> None:
        self.snap = snap

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = max(8, options.max_height - CURSOR_LINE)
        free = options.update(height=None)

        def lines(part: RenderableType) -> int:
            return len(console.render_lines(part, free, pad=False))

        status, timeline = self.snap["status"], self.snap["timeline"]
        must: list[RenderableType] = [
            Text(f"hubcluster lab - master: {status['master'] or 'NONE'}", style="bold"),
            Text("\n".join(shell_export("HUBCTL_MONGO_URI", status["uri"], width))),
            self._failover_line(timeline),
            self._hubs_table(width),
        ]
        used = sum(lines(part) for part in must)
        shown = list(must)
        for part in self._optional():
            if used + lines(part) <= height:
                shown.append(part)
                used += lines(part)
        clients = self._clients(width, height - used)
        if clients is not None:
            shown.append(clients)
        yield from shown

    def _failover_line(self, timeline: object) -> Text:
        failovers = getattr(timeline, "failovers", [])
        last = failovers[-1].describe() if failovers else "none yet"
        more = f" ({len(failovers)} in all)" if len(failovers) > 1 else ""
        return Text(f"last failover  {last}{more}")

    def _hubs_table(self, width: int) -> Table:
        """One row per hub: its mongod and hubd, its role as the hubs see it, its clients;
        a wide terminal also gets the service, release, keys and when the hub last said so."""
        status, per_server = self.snap["status"], self.snap["per_server"]
        side = {h["name"]: h for h in (self.snap["side"] or {}).get("hubs", [])}
        wide = width >= WIDE
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        columns = ["Hub", "mongod", "hubd", "Role", "Clients"]
        if wide:
            columns += ["Service", "Release", "Keys", "Updated"]
        for column in columns:
            table.add_column(column)
        for h in status["hubs"]:
            state = h["mongod"] + (" (isolated)" if h["isolated"] else "")
            if h["mongod"] == "PRIMARY":
                state = f"[bold green]{state}[/]"
            seen = side.get(h["name"], {})
            role = seen.get("role_shown", "-")
            if seen.get("role") == "master":
                role = f"[bold green]{role}[/]"
            elif seen.get("role") == "unreachable":
                role = f"[red]{role}[/]"
            row = [h["name"], state, h["hubd"], role, str(per_server.get(h["name"], 0))]
            if wide:
                row += [
                    h["service"],
                    seen.get("release") or "-",
                    str(seen["keys"]) if seen.get("keys") is not None else "-",
                    ago(seen["updated"]) if seen.get("updated") else "-",
                ]
            table.add_row(*row)
        return table

    def _optional(self) -> Iterable[RenderableType]:
        """What else there is to show, most useful first."""
        side = self.snap["side"]
        for problem in [p for h in (side or {}).get("hubs", []) for p in h.get("problems") or []]:
            yield Text(problem, style="red")
        reports = self.snap["reports"]
        rounds = self.snap["timeline"].agent_rounds
        seen = (
            f"   clients seen recently {side['clients']['fresh']}, stale {side['clients']['stale']}"
            if side
            else ""
        )
        yield Text(
            f"reports stored {reports if reports is not None else '?'}   "
            f"agent rounds run {rounds}{seen}"
        )
        for h in (side or {}).get("hubs", []):
            progress = h.get("round_progress")
            if h.get("role") == "master" and (progress or h.get("last_round")):
                yield Text(
                    f"{h['name']}: round running: {progress['done']}/{progress['due']}"
                    if progress
                    else f"last {h['last_round']}"
                )
        for h in self.snap["status"]["hubs"]:
            if h.get("portal"):
                yield Text(f"portal of {h['name']}  {h['portal']}")
        balanced = self.snap["status"].get("haproxy")
        if balanced:
            yield Text(f"portal via haproxy  {balanced['read']}  master {balanced['master']}")

    def _clients(self, width: int, rows: int) -> Grid | None:
        """Each client and the hub it points at, in as many columns and rows as there is
        room for (one line goes to the title)."""
        clients: dict[str, str] = self.snap.get("clients") or {}
        if not clients or rows < 2:
            return None
        cells = [f"{name} -> {hub}" for name, hub in sorted(clients.items())]
        cell = max(len(c) for c in cells)
        columns = max(1, (width + 2) // (cell + 2))
        lines = min(rows - 1, math.ceil(len(cells) / columns))
        fits = min(len(cells), lines * columns)
        title = f"clients: {len(cells)}" + (f", {fits} shown" if fits < len(cells) else "")
        grid = Grid.grid(padding=(0, 2))
        for _ in range(columns):
            grid.add_column(overflow="fold")
        grid.title, grid.title_justify = title, "left"
        shown = cells[:fits]
        for line in range(lines):
            # Column-major, as `ls` lists: names read down, then across.
            grid.add_row(*(shown[i] for i in range(line, len(shown), lines)))
        return grid
