"""policy_server.dat: read as an address the agent can connect to, or reported as garbage."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from client_agent.state import ClientState
from hubcluster.config_check import split_address
from tests.properties.strategies import hostile_text

hosts = st.one_of(
    st.sampled_from(
        [
            "127.0.0.1",
            "::1",
            "[::1]",
            "hub1",
            "hub1.example.com",
            "0.0.0.0",
            "a" * 63,
            "a" * 64,
            "a." * 130,
            "bücher.de",
            "[hub1]",
            "999.1.1.1",
        ]
    ),
    hostile_text,
)
ports = st.one_of(st.integers(-5, 70_000).map(str), st.sampled_from(["", "٣", "0x10", "+1"]))
contents = st.one_of(
    st.binary(max_size=80),
    st.builds(
        lambda h, p, end: f"{h}:{p}{end}".encode("utf-8", "surrogatepass"),
        hosts,
        ports,
        st.sampled_from(["", "\n", "\n\n", "\r\n", " \n", "\0"]),
    ),
)


@given(contents)
def test_any_file_gives_a_usable_address_or_one_line_saying_why_not(raw):
    with tempfile.TemporaryDirectory() as workdir:
        state = ClientState(Path(workdir))
        state.policy_server_path.write_bytes(raw)
        address, problem = state.read_policy_server()
        if address is None:
            assert problem and "\n" not in problem and len(problem) < 400
            return
        assert problem is None
        host, port = split_address(address)
        # What the agent's connect does first, without asking DNS: anything but a lookup
        # failure (OSError) would be a crash of the run.
        try:
            socket.getaddrinfo(host, port, flags=socket.AI_NUMERICHOST)
        except OSError:
            pass
        state.write_policy_server(address)  # the repair path writes what it read
        assert state.read_policy_server() == (address, None)
