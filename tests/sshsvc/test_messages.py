"""Wire messages: round trips, and clear refusals of what a peer should not have sent."""

from __future__ import annotations

import pytest

from hubcluster.messages import (
    MasterInfo,
    MessageError,
    RegisterReply,
    RegisterRequest,
    report_line,
)


def test_round_trips():
    info = MasterInfo("h1:5308", ["h1:5308", "h2:5308"], "0123456789abcdef", None)
    assert MasterInfo.from_json(info.to_json()) == info
    none = MasterInfo(None, ["h1:5308"], None, "no primary")
    assert MasterInfo.from_json(none.to_json()) == none
    request = RegisterRequest("web1.example.com", 5309)
    assert RegisterRequest.from_json(request.to_json()) == request
    reply = RegisterReply("a" * 64, "web1", "10.0.0.5", 5309, True)
    assert RegisterReply.from_json(reply.to_json()) == reply


@pytest.mark.parametrize(
    "text, problem",
    [
        ("[1]", "expected a JSON object"),
        ("{", "not JSON"),
        ('{"master": null, "hubs": []}', "missing release, reason"),
        ('{"master": "h1", "hubs": [], "release": null, "reason": null}', "has no port"),
        ('{"master": null, "hubs": "h1:1", "release": null, "reason": null}', "hubs"),
        ('{"master": null, "hubs": [], "release": "../x", "reason": null}', "not a release id"),
        ('{"master": null, "hubs": [], "release": null, "reason": null, "x": 1}', "unknown"),
    ],
)
def test_master_info_refusals(text, problem):
    with pytest.raises(MessageError, match=problem):
        MasterInfo.from_json(text)


@pytest.mark.parametrize(
    "text, problem",
    [
        ('{"hostname": "", "report_port": 1}', "hostname"),
        ('{"hostname": "a b", "report_port": 1}', "spaces"),
        ('{"hostname": "a", "report_port": true}', "report_port"),
        ('{"hostname": "a", "report_port": 0}', "report_port"),
    ],
)
def test_register_request_refusals(text, problem):
    with pytest.raises(MessageError, match=problem):
        RegisterRequest.from_json(text)


def test_report_line():
    record = {"seq": 3, "time": 1.5, "kind": "outcome", "payload": {"a": 1}}
    assert report_line(record) == '{"seq":3,"time":1.5,"kind":"outcome","payload":{"a":1}}'
    with pytest.raises(MessageError):
        report_line({"seq": 3})
