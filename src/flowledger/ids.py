"""Run ids, lease tokens, clocks and the identity of this process."""

from __future__ import annotations

import functools
import os
import secrets
import socket
import time
import uuid

import uuid_utils.compat


def new_run_id() -> uuid.UUID:
    """A UUIDv7: time-ordered, so the newest runs sort last and pages are index scans."""
    return uuid_utils.compat.uuid7()


def parse_run_id(value: str | uuid.UUID) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value).strip())
    except ValueError:
        return None


def new_token() -> str:
    return secrets.token_hex(8)


def now_us() -> int:
    return time.time_ns() // 1000


def _process_start(pid: int) -> str:
    """Start time of a process (Linux clock ticks), so a reused pid is not taken for it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()
    except (OSError, IndexError):
        return "?"


@functools.cache
def hostname() -> str:
    return socket.gethostname()


def identity() -> str:
    """``host:pid:start`` of this process, recorded as the executor of the runs it runs."""
    pid = os.getpid()
    return f"{hostname()}:{pid}:{_process_start(pid)}"


def is_alive_here(executor: str | None) -> bool | None:
    """Whether the process named by ``executor`` still lives; None if it ran on another host."""
    if not executor:
        return False
    host, _, rest = executor.partition(":")
    if host != hostname():
        return None
    pid_text, _, start = rest.partition(":")
    try:
        pid = int(pid_text)
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return start in ("?", _process_start(pid))
