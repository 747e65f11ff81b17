"""Hub and agent configs: a config every part can run with, or one ConfigError line."""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from client_agent.config import load_agent_config, parse_agent_config
from hub.config import load_hub_config, parse_hub_config
from hubcluster.config_check import ConfigError, split_address
from hubcluster.messages import RegisterRequest
from tests.properties.strategies import hostile_text, numbers, toml_table, toml_values

durations = st.one_of(
    st.sampled_from(["5s", "1m", "0.1s", "100d", "99999999999999999999d", "1e9", "-1s", ""]),
    numbers,
    hostile_text,
)
addresses = st.one_of(
    st.sampled_from(["127.0.0.1:5308", "[::1]:1", "h1:27017", "h:0", "h:99999", "h1", "[h]:1"]),
    hostile_text,
)
ints = st.one_of(numbers, st.integers(-10, 10**7))


def some(fields: dict, wild: bool) -> st.SearchStrategy[dict]:
    """Tables with the expected keys: near-valid values only (so that parsing gets past the
    first key), or any values and a stray key too."""
    if not wild:
        return st.fixed_dictionaries({}, optional=fields)
    return st.fixed_dictionaries(
        {}, optional={**{k: v | toml_values for k, v in fields.items()}, "typo": toml_values}
    )


near_durations = st.sampled_from(
    [
        "5s",
        "1m",
        "0.1s",
        "100d",
        "400d",
        "99999999999999999999d",
        "1e9",
        "-1s",
        "",
        0,
        0.05,
        1e300,
        math.inf,
        math.nan,
        True,
    ]
)
near_addresses = st.sampled_from(
    [
        "127.0.0.1:5308",
        "[::1]:1",
        "h1:27017",
        "h:0",
        "h:99999",
        "h1",
        "[h]:1",
        "h\0:1",
        "a" * 64 + ":1",
        "é:1",
        " :1",
    ]
)


def agent_docs(wild: bool) -> st.SearchStrategy[dict]:
    text = hostile_text if wild else st.nothing()
    durs = near_durations | (durations if wild else st.nothing())
    return st.fixed_dictionaries(
        {},
        optional={
            "agent": some(
                {
                    "workdir": st.sampled_from(["/tmp/x", "rel", "/a\0b", "", "/a\nb"]) | text,
                    "hostname": st.sampled_from(["web1", "web 1", "a" * 300, "w\t1", "é"]) | text,
                    "connect_timeout": durs,
                    "run_interval": durs,
                },
                wild,
            ),
            "serve": some({"listen": near_addresses | (addresses if wild else st.nothing())}, wild),
            "spool": some({"max_bytes": ints}, wild),
        },
    )


def hub_docs(wild: bool) -> st.SearchStrategy[dict]:
    text = hostile_text if wild else st.nothing()
    durs = near_durations | (durations if wild else st.nothing())
    addrs = near_addresses | (addresses if wild else st.nothing())
    entry = {"name": st.sampled_from(["hub1", "hub2"]), "mongo": addrs, "service": addrs}
    entries = some(entry, wild) if wild else st.fixed_dictionaries(entry)
    return st.fixed_dictionaries(
        {
            "hub": some(
                {
                    "name": st.sampled_from(["hub1", "hub2"]),
                    "workdir": st.sampled_from(["/var/lib/h", "/a\0b"]) | text,
                    "listen": addrs,
                    "trust_keys_from": st.lists(
                        st.sampled_from(["10.0.0.0/8", "::/0", "300.0.0.0/8"]) | text,
                        max_size=3,
                    ),
                    "state_interval": durs,
                },
                wild,
            ),
            "replset": some(
                {
                    "name": st.just("rs"),
                    "uri": st.sampled_from(["mongodb://h1:27017/?replicaSet=rs", "http://x"]),
                    "max_staleness": durs,
                },
                wild,
            ),
            "hubs": st.lists(entries, max_size=3),
        },
        optional={
            "collector": some(
                {
                    k: durs
                    for k in (
                        "interval",
                        "connect_timeout",
                        "host_timeout",
                        "ifelapsed",
                        "expireafter",
                    )
                }
                | {k: ints for k in ("concurrency", "batch_size", "max_report_bytes")},
                wild,
            ),
            "sync": some({"interval": durs}, wild),
        },
    )


_VALUE = near_durations | near_addresses | hostile_text | toml_values | ints
AGENT_KEYS = [("agent", k) for k in ("workdir", "hostname", "connect_timeout", "run_interval")]
AGENT_KEYS += [("serve", "listen"), ("spool", "max_bytes")]
HUB_BASE = {
    "hub": {"name": "hub1"},
    "replset": {"uri": "mongodb://h1:27017/?replicaSet=rs"},
    "hubs": [{"name": "hub1", "mongo": "h1:27017", "service": "h1:5308"}],
}
HUB_KEYS = [("hub", k) for k in ("workdir", "listen", "trust_keys_from", "state_interval")]
HUB_KEYS += [("replset", k) for k in ("name", "max_staleness")] + [("sync", "interval")]
HUB_KEYS += [
    ("collector", k)
    for k in (
        "interval",
        "concurrency",
        "connect_timeout",
        "host_timeout",
        "ifelapsed",
        "expireafter",
        "batch_size",
        "max_report_bytes",
    )
]


def _usable_seconds(seconds: float) -> None:
    assert isinstance(seconds, float) and math.isfinite(seconds) and seconds >= 0
    dt.timedelta(seconds=seconds)  # the scheduler's and the deadline's arithmetic


def _usable_path(path: Path) -> None:
    assert "\0" not in str(path)


@given(agent_docs(False) | agent_docs(True))
def test_agent_config_is_usable_or_refused_in_one_line(doc):
    try:
        config = parse_agent_config(doc)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    _usable_path(config.workdir)
    _usable_seconds(config.connect_timeout)
    _usable_seconds(config.run_interval)
    split_address(config.listen)
    assert config.spool_max_bytes >= 4096
    if config.hostname is not None:
        # the name the agent registers under must be one a hub accepts
        RegisterRequest.from_json(RegisterRequest(config.hostname, 5309).to_json())


@given(st.sampled_from(AGENT_KEYS), _VALUE)
def test_each_agent_key_alone_is_usable_or_refused(where, value):
    section, key = where
    test_agent_config_is_usable_or_refused_in_one_line.hypothesis.inner_test(
        {section: {key: value}}
    )


@given(st.sampled_from(HUB_KEYS), _VALUE)
def test_each_hub_key_alone_is_usable_or_refused(where, value):
    section, key = where
    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in HUB_BASE.items()}
    doc.setdefault(section, {})[key] = value
    test_hub_config_is_usable_or_refused_in_one_line.hypothesis.inner_test(doc)


@given(hub_docs(False) | hub_docs(True))
def test_hub_config_is_usable_or_refused_in_one_line(doc):
    try:
        config = parse_hub_config(doc)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    _usable_path(config.workdir)
    c = config.collector
    for seconds in (
        c.interval,
        c.connect_timeout,
        c.host_timeout,
        c.ifelapsed,
        c.expireafter,
        config.max_staleness,
        config.sync_interval,
        config.state_interval,
    ):
        _usable_seconds(seconds)
    for address in (
        [config.listen] + [h.mongo for h in config.hubs] + [h.service for h in config.hubs]
    ):
        split_address(address)
    assert config.me.name == config.name


@given(
    st.one_of(
        hostile_text,
        st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
        agent_docs(True).map(
            lambda d: "".join(toml_table(f"[{k}]", v) for k, v in d.items() if isinstance(v, dict))
        ),
    )
)
def test_config_files_of_any_text_are_read_or_refused(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        for load in (load_agent_config, load_hub_config):
            try:
                load(path)
            except ConfigError as exc:
                assert "\n" not in str(exc)
