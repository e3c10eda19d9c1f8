"""Where ``forecast dashboard`` listens: loopback only unless ``--host`` is given explicitly.

Issue 18's auth rule: without ``FORECAST_API_TOKEN`` the pages are open, so the server must bind to
127.0.0.1 by default; another address is taken only from ``--host`` and is then warned about. The
listening socket is read from the kernel's table (``/proc/net/tcp``) of a real server process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from forecast.cli.dashboard import is_loopback
from tests.dashboard_env import trained_env

pytestmark = pytest.mark.slow  # a server process

PROC_TCP = Path("/proc/net/tcp")
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _listening_on(port: int) -> set[str]:
    """The IPv4 addresses with a listening TCP socket on ``port`` (dotted quads)."""
    found = set()
    for line in PROC_TCP.read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == LISTEN and int(hex_port, 16) == port:
            # the kernel writes the address as a little-endian 32-bit word
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


@contextmanager
def _dashboard(env: dict[str, str], port: int, log: Path, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """``forecast dashboard --port PORT [extra]`` until its health answers on loopback."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "forecast.cli", "dashboard", "--port", str(port), "--no-keep", *extra],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the dashboard did not start: {log.read_text()}") from None
                time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def open_env(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, str]:
    """The trained test CRM's settings without a token (pages open to whoever reaches them)."""
    if not PROC_TCP.is_file():
        pytest.skip(f"no {PROC_TCP}: the listening sockets cannot be read on this system")
    env = {**os.environ, **trained_env(tmp_path_factory, worker_id), "FORECAST_THREADS": "1"}
    env.pop("FORECAST_API_TOKEN", None)
    return env


def test_without_host_it_listens_on_loopback_only(open_env: dict[str, str], tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "server.log"
    with _dashboard(open_env, port, log):
        assert _listening_on(port) == {"127.0.0.1"}
    text = log.read_text()
    assert f"dashboard on http://127.0.0.1:{port}/" in text and "warning" not in text


def test_another_address_is_taken_only_when_given_and_is_warned_about(
    open_env: dict[str, str], tmp_path: Path
) -> None:
    port = _free_port()
    log = tmp_path / "server.log"
    with _dashboard(open_env, port, log, "--host", "0.0.0.0"):
        assert _listening_on(port) == {"0.0.0.0"}
    text = log.read_text()
    assert "listens on 0.0.0.0 without FORECAST_API_TOKEN" in text
    assert "anyone who reaches this address reads the pages" in text
