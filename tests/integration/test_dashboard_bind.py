"""Where ``forecast dashboard`` listens: loopback only unless ``--host`` is given explicitly.

Issue 18's auth rule: without ``FORECAST_API_TOKEN`` the pages are open, so the server must bind to
127.0.0.1 by default; another address is taken only from ``--host`` and is then warned about. The
listening sockets are read from the kernel's tables (``/proc/net/tcp`` and ``tcp6``), those the real
server process holds.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from forecast.cli.dashboard import is_loopback
from tests.dashboard_env import dashboard_server, trained_env
from tests.processes import free_port

pytestmark = pytest.mark.slow  # a server process

PROC_TCP = Path("/proc/net/tcp")
PROC_TCP6 = Path("/proc/net/tcp6")
LISTEN = "0A"
"""The state column's value of a listening socket in ``/proc/net/tcp``."""


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("LocalHost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("192.168.0.10", False),
        ("dashboard.example", False),
        ("", False),
    ],
)
def test_loopback_addresses_are_told_from_the_others(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _listening_on(port: int, pid: int) -> set[str]:
    """The addresses (IPv4 and IPv6) on which process ``pid`` listens with TCP ``port``.

    A socket is counted only if the process holds it (its inode among ``/proc/PID/fd``'s links), so
    another program that took the port cannot stand in for the server.
    """
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            held.add(target[len("socket:[") : -1])
    found = set()
    for table, family in ((PROC_TCP, socket.AF_INET), (PROC_TCP6, socket.AF_INET6)):
        if not table.is_file():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] != LISTEN or int(hex_port, 16) != port or fields[9] not in held:
                continue
            raw = bytes.fromhex(address)
            # the kernel writes each 32-bit word of the address in the machine's (little-endian) order
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(socket.inet_ntop(family, words))
    return found


@pytest.fixture
def open_env(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, str]:
    """The trained test CRM's settings without a token (pages open to whoever reaches them)."""
    if not PROC_TCP.is_file():
        pytest.skip(f"no {PROC_TCP}: the listening sockets cannot be read on this system")
    env = {**os.environ, **trained_env(tmp_path_factory, worker_id), "FORECAST_THREADS": "1"}
    env.pop("FORECAST_API_TOKEN", None)
    return env


def test_without_host_it_listens_on_loopback_only(open_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    with dashboard_server(open_env, port, log, "--no-keep") as process:
        assert _listening_on(port, process.pid) == {"127.0.0.1"}  # and no IPv6 socket ("::")
    text = log.read_text()
    assert f"dashboard on http://127.0.0.1:{port}/" in text and "forecast: warning" not in text


def test_another_address_is_taken_only_when_given_and_is_warned_about(
    open_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    with dashboard_server(open_env, port, log, "--no-keep", "--host", "0.0.0.0") as process:
        assert _listening_on(port, process.pid) == {"0.0.0.0"}
    text = log.read_text()
    assert "listens on 0.0.0.0 without FORECAST_API_TOKEN" in text
    assert "anyone who reaches this address reads the pages" in text
