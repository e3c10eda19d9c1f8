"""Servers the integration tests start: a free loopback port, and stopping the process for sure."""

from __future__ import annotations

import socket
import subprocess


def free_port() -> int:
    """A TCP port free on loopback now (another program may take it before it is bound)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop ``process``: politely (SIGTERM), then for sure (SIGKILL) after ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
