"""Report lines from a client's report service: each line a record, a rejection with its
reason, or the one error that stops the parse; never an exception."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from hub.report_records import MAX_SEQ, Oversized, parse_report_lines
from hubcluster import report_kinds
from hubcluster.messages import report_line
from tests.properties.strategies import hostile_text, json_values, numbers, repeated

seqs = st.one_of(
    st.integers(1, 20),
    st.sampled_from([0, -1, MAX_SEQ, MAX_SEQ + 1, 2**64]),
    numbers,
    st.booleans(),
)
texts = st.text(max_size=12)
promise_results = st.builds(
    report_kinds.promise_result,
    texts,
    st.sampled_from([*report_kinds.STATUSES, "odd"]),
    texts,
    numbers,
)
payloads = st.one_of(
    st.builds(
        lambda r, s, e, p: report_kinds.outcome_payload(
            release=r, server=s, exit_code=e, error=None, promises=p
        ),
        texts | st.none(),
        texts | st.none(),
        st.integers(-(2**70), 2**70),
        st.lists(promise_results, max_size=2),
    ),
    st.builds(
        lambda h, u, a: report_kinds.inventory_payload(
            hostname=h,
            os="linux",
            kernel="6",
            uptime=u,
            addresses=a,
            agent_version="1",
            policy_release=None,
            policy_server=None,
        ),
        texts,
        numbers | st.none(),
        st.lists(texts | json_values, max_size=2),
    ),
    json_values,
)
records = st.fixed_dictionaries(
    {
        "seq": seqs,
        "time": numbers | json_values,
        "kind": st.sampled_from([report_kinds.OUTCOME, report_kinds.INVENTORY, "", "zzz"]),
        "payload": payloads,
    }
)
epochs = st.sampled_from(["", "e1", "e2", "bad epoch", "x" * 70])


@st.composite
def lines(draw: st.DrawFn) -> str | Oversized:
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return report_line(draw(records), draw(epochs))
    if kind == 1:
        return json.dumps(draw(records), allow_nan=True)
    if kind == 2:
        return draw(hostile_text)
    if kind == 3:
        head = '{"seq":' + str(draw(seqs)) + draw(st.sampled_from([",", "}", "x"]))
        return Oversized(head, draw(st.integers(0, 1 << 30)), draw(st.booleans()))
    return (
        '{"seq":'
        + str(draw(st.integers(1, 30)))
        + ","
        + draw(repeated(["[", '{"a":'], 100, 50_000))
    )


good_payloads = {
    report_kinds.OUTCOME: st.builds(
        lambda p: report_kinds.outcome_payload(
            release=None, server=None, exit_code=0, error=None, promises=p
        ),
        st.lists(
            st.builds(
                report_kinds.promise_result,
                texts,
                st.sampled_from(report_kinds.STATUSES),
                texts,
                st.floats(0, 1e6),
            ),
            max_size=2,
        ),
    ),
    report_kinds.INVENTORY: st.builds(
        lambda h: report_kinds.inventory_payload(
            hostname=h,
            os="linux",
            kernel="6",
            uptime=None,
            addresses=[],
            agent_version="1",
            policy_release=None,
            policy_server=None,
        ),
        texts,
    ),
}


@st.composite
def streams(draw: st.DrawFn) -> list[str | Oversized]:
    """What a real service sends (increasing seqs, good records) with hostile lines among
    them, some of those carrying a seq in their place."""
    seq, epoch, out = draw(st.integers(1, 12)), draw(st.sampled_from(["", "e1"])), []
    for _ in range(draw(st.integers(1, 6))):
        seq += draw(st.integers(1, 3))
        kind = draw(st.sampled_from(list(good_payloads)))
        record = {"seq": seq, "time": 1.0, "kind": kind, "payload": draw(good_payloads[kind])}
        line = report_line(record, epoch)
        if draw(st.integers(0, 3)) == 0:
            line = draw(
                st.sampled_from(
                    [
                        line[: len(line) // 2],
                        line.replace('"time":1.0', '"time":"x"'),
                        line[:-1] + ',"x":' + "[" * 5000 + "]" * 5000 + "}",
                    ]
                )
            )
        out.append(line)
    if draw(st.booleans()):
        out.insert(draw(st.integers(0, len(out))), draw(lines()))
    return out


@given(
    st.lists(lines(), max_size=6) | streams(),
    st.integers(0, 10),
    st.integers(1, 1 << 20),
    epochs,
    st.booleans(),
)
def test_any_answer_is_split_into_records_rejections_and_at_most_one_error(
    got, since, max_bytes, epoch, as_text
):
    if as_text:
        got = "\n".join(x if isinstance(x, str) else x.head for x in got)
    parsed = parse_report_lines(got, since, max_bytes, epoch)
    if parsed.error is not None:
        assert "\n" not in parsed.error and len(parsed.error) < 500
    placed = [r["seq"] for r in parsed.records] + [r["seq"] for r in parsed.rejected]
    assert len(placed) == len(set(placed))
    assert all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= MAX_SEQ for s in placed)
    floor = since if parsed.epoch == epoch else 0
    assert all(s > floor for s in placed)
    seq_order = [r["seq"] for r in parsed.records]
    assert seq_order == sorted(seq_order)
    for record in parsed.records:
        assert report_kinds.payload_problem(record["kind"], record["payload"]) is None
    for rejected in parsed.rejected:
        assert rejected["reason"] and isinstance(rejected["raw"], str)
