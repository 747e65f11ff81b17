"""A report service's answer read in whatever pieces the network delivers gives the same
lines as read whole: on a stream (through its last line) and on a channel per ask alike."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hub.report_records import Oversized
from hub.report_stream import HEAD, Answer, LineSplitter
from hubcluster.reports_protocol import END_LINE, ERROR_PREFIX

MAX_LINE = 5000  # past HEAD, so that a long line's head and size are both checked

# What a service may send as report lines: any bytes but a newline, and never a stream's own
# last line (a report line is a JSON object; `#` lines that are not ours stay lines).
line_bytes = st.binary(max_size=40) | st.builds(
    lambda b, n: b * n, st.binary(min_size=1, max_size=3), st.integers(1, 2 * MAX_LINE)
)
lines = st.lists(
    line_bytes.map(lambda b: b.replace(b"\n", b" ")).filter(
        lambda b: b != END_LINE.encode() and not b.startswith(ERROR_PREFIX.encode())
    ),
    max_size=6,
)
endings = st.sampled_from([END_LINE, ERROR_PREFIX + "spool is locked"])


def expected(sent: list[bytes]) -> list[str | Oversized]:
    return [
        Oversized(b[:HEAD].decode("utf-8", "replace"), len(b), True)
        if len(b) > MAX_LINE
        else b.decode("utf-8", "surrogateescape")
        for b in sent
    ]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@given(lines, endings, st.lists(st.integers(0, 10**6), max_size=12))
def test_a_stream_answer_reads_the_same_in_any_pieces(sent, ending, cuts):
    data = b"".join(b + b"\n" for b in sent) + ending.encode() + b"\n"
    answer = Answer()
    splitter = LineSplitter(answer, MAX_LINE, stream=True)
    for piece in split(data, cuts):
        splitter.feed(piece)
    splitter.finish()
    assert splitter.ended
    assert answer.lines == expected(sent)
    if ending == END_LINE:
        assert answer.exit_status == 0 and answer.stderr == ""
    else:
        assert answer.exit_status == 1 and answer.stderr == "spool is locked"


@given(lines, st.lists(st.integers(0, 10**6), max_size=12))
def test_a_channel_answer_reads_the_same_in_any_pieces(sent, cuts):
    data = b"".join(b + b"\n" for b in sent)
    answer = Answer(complete=True)  # read to EOF
    splitter = LineSplitter(answer, MAX_LINE, stream=False)
    for piece in split(data, cuts):
        splitter.feed(piece)
    splitter.finish()
    assert answer.lines == expected(sent)
