"""Issue 20: log_format = "json" makes a real hubd write one JSON object per line, with the
same sentences as its text lines; text stays the default; a bad value is one line."""

from __future__ import annotations

import json
import logging
import re
import subprocess

from hubcluster.log_format import JsonLines
from hubctl.lab.child_commands import HUBD
from tests.conftest import wait_until
from tests.metrics.conftest import scrape_text

ROUND = re.compile(r"round on hub\d: \d+/\d+ hosts pulled")


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_json_hubd_logs_objects_with_the_text_sentences(metrics_fleet):
    lab = metrics_fleet.lab
    master = metrics_fleet.master()
    text_log = master.log.read_text()
    assert not text_log.lstrip().startswith("{")  # text is the default
    hub = next(h for h in lab.hubs if h is not master)
    lab.stop_hub(hub)
    config = hub.config.read_text()
    hub.config.write_text(config.replace("[hub]\n", '[hub]\nlog_format = "json"\n', 1))
    hub.log.write_text("")
    try:
        lab.start_hub(hub)
        wait_until(lambda: scrape_text(hub) is not None, 30, 0.2, f"{hub.name} back")
        wait_until(lambda: "is up" in hub.log.read_text(), 10, 0.2, "its start line")
        lines = _json_lines(hub.log.read_text())
        assert lines and all(line["hub"] == hub.name for line in lines)
        assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
        up = next(line for line in lines if f"{hub.name} is up: " in line["message"])
        assert up["level"] == "INFO" and up["logger"] == "hubcluster.hubd"
        # The same sentence the text form writes on the master, from the same code.
        rounds = [ln for ln in text_log.splitlines() if ROUND.search(ln)]
        assert rounds and "INFO hubcluster.collector: round on" in rounds[-1]
    finally:
        lab.stop_hub(hub)
        hub.config.write_text(config)
        lab.start_hub(hub)


def test_a_bad_log_format_is_one_line(tmp_path, metrics_fleet):
    hub = metrics_fleet.lab.hubs[0]
    config = hub.config.read_text().replace("[hub]\n", '[hub]\nlog_format = "xml"\n', 1)
    bad = tmp_path / "bad.toml"
    bad.write_text(config)
    out = subprocess.run(
        [*HUBD, "run", "--config", str(bad)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2
    said = f"hubd: error: {bad}: hub.log_format: must be text or json, got 'xml'"
    assert out.stderr.strip() == said


def test_fields_given_to_a_log_call_are_in_its_json_object():
    record = logging.LogRecord("hubcluster.collector", logging.WARNING, "", 0, "%s", ("x",), None)
    record.round, record.host = "2026-12-01T00:00:00+00:00", "ab" * 32
    line = json.loads(JsonLines("hub2").format(record))
    assert line["round"] == "2026-12-01T00:00:00+00:00" and line["host"] == "ab" * 32
    assert (line["hub"], line["level"], line["message"]) == ("hub2", "WARNING", "x")
