"""Wire messages between hubs and clients: a valid message or MessageError, and what is
accepted survives a round trip unchanged."""

from __future__ import annotations

import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st

from hubcluster.messages import (
    KeysReply,
    MasterfilesReply,
    MasterInfo,
    MessageError,
    RegisterReply,
    RegisterRequest,
    encode_manifest,
    parse_manifest,
)
from hubcluster.reports_protocol import MAX_LIMIT, parse_reports_command
from tests.properties.strategies import hostile_text, json_text, json_values, objects_with, repeated

good_sha = st.text("0123456789abcdef", min_size=64, max_size=64)
sha = st.one_of(good_sha, good_sha, st.text(max_size=70))
release = st.one_of(sha.map(lambda s: s[:16]), st.none(), st.text(max_size=20))
address = st.sampled_from(["127.0.0.1:5308", "h:1", "h", "h\0:1", "[::1]:5", "x" * 300 + ":1"])
names = st.sampled_from(["web1", "web 1", "", "a" * 256, "é", "w\n1"]) | st.text(max_size=10)
ports = st.integers(-1, 70_000) | st.booleans()

MESSAGES = {
    MasterInfo: objects_with(
        {
            "master": address | st.none(),
            "hubs": st.lists(address, max_size=3),
            "release": release,
            "reason": st.text(max_size=10) | st.none(),
        }
    ),
    RegisterRequest: objects_with({"hostname": names, "report_port": ports}),
    RegisterReply: objects_with(
        {
            "sha": sha,
            "hostname": names,
            "address": st.text(max_size=10),
            "report_port": ports,
            "new_key": st.booleans(),
        }
    ),
    KeysReply: objects_with(
        {
            "keys": st.dictionaries(sha, st.text(max_size=30) | json_values, max_size=2),
            "revoked": st.dictionaries(
                sha,
                objects_with({"time": st.text(max_size=5), "reason": st.text(max_size=5)}),
                max_size=2,
            ),
        }
    ),
    MasterfilesReply: objects_with({"release": release, "tree_hash": sha | st.none()})
    | good_sha.map(lambda h: {"release": h[:16], "tree_hash": h}),
}

raw_input = st.one_of(
    hostile_text,
    st.binary(max_size=60),
    json_values.map(json_text),
    repeated(["[", '{"a":'], 500, 100_000),
)


@given(st.sampled_from(list(MESSAGES)), st.data())
def test_every_message_parses_or_is_refused_and_round_trips(kind, data):
    text = data.draw(MESSAGES[kind].map(json_text) | raw_input)
    try:
        message = kind.from_json(text)
    except MessageError as exc:
        assert "\n" not in str(exc)
        return
    assert kind.from_json(message.to_json()) == message


files = objects_with(
    {
        "path": st.sampled_from(["a", "b/c", "b", "../x", "/abs", "a//b", "a\0b", "."])
        | st.text(max_size=8),
        "sha256": sha,
        "size": st.integers(-1, 1 << 41),
        "mode": st.integers(-1, 0o17777),
    }
)


@given(st.one_of(st.lists(files, max_size=4).map(json_text), raw_input))
def test_manifests_parse_or_are_refused_and_round_trip(text):
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    try:
        entries = parse_manifest(data)
    except MessageError as exc:
        assert "\n" not in str(exc)
        return
    again = parse_manifest(
        encode_manifest(entries), hashlib.sha256(encode_manifest(entries)).hexdigest()[:16]
    )
    assert sorted(again, key=lambda e: e.path) == sorted(entries, key=lambda e: e.path)
    json.dumps([e.path for e in entries])


commands = st.one_of(
    hostile_text,
    st.lists(
        st.sampled_from(
            [
                "reports",
                "--since",
                "--limit",
                "--epoch",
                "0",
                "5",
                "e1",
                "²",
                "٣",
                "9" * 19,
                "9" * 20,
                "'",
                '"',
                "-1",
                "100000",
            ]
        )
        | st.text(max_size=5),
        max_size=7,
    ).map(" ".join),
)


@given(commands)
def test_the_reports_command_a_hub_sends_parses_or_is_refused(command):
    try:
        ask = parse_reports_command(command)
    except ValueError as exc:
        assert "\n" not in str(exc)
        return
    assert 0 <= ask.since < 10**19 and 0 < ask.limit <= MAX_LIMIT
