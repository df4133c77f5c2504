"""The port check tells a process that is gone from one that listens."""

from __future__ import annotations

import socket

from checks import Status, http


def test_a_listening_port_is_ok() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert http.check_listening(f"http://127.0.0.1:{port}").status is Status.OK


def test_a_closed_port_is_crit_with_zero_availability() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = http.check_listening(f"http://127.0.0.1:{port}", timeout_s=1)
    assert result.status is Status.CRIT
    assert result.measurements["availability"] == 0.0
    assert "nothing accepts connections" in result.summary
