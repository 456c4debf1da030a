"""Workflows the HTTP tests start through ``flowledger serve --app tests.helpers.http_app``.

Gates are files: a step waits until the test creates its file (the server executes the
runs in another process, so there is no in-process event to wait on).
"""

from __future__ import annotations

import enum
import logging
from pathlib import Path

import flowledger as fl
from tests.helpers.gate import wait_for_file


@fl.step
def fetch(n: int) -> dict[str, object]:
    return {"n": n, "password": f"secret-{n}"}


@fl.step
def write_report(data: dict[str, object]) -> str:
    fl.artifacts.save("report.md", f"# report {data['n']}\n", media_type="text/markdown")
    return f"report {data['n']}"


@fl.workflow(name="report")
def report(n: int, api_key: str = "k-123") -> str:
    return write_report(fetch(n))


@fl.step
def check(flag: str) -> str:
    logging.getLogger("http_app").warning("checking %s", Path(flag).name)
    if Path(flag).exists():
        raise RuntimeError(f"failing while {flag} exists")
    return "checked"


@fl.workflow(name="flaky")
def flaky(n: int, flag: str) -> list[object]:
    return [fetch(n)["n"], check(flag)]


@fl.step
def gated_step(gate: str, position: int) -> int:
    wait_for_file(gate)
    return position


@fl.workflow(name="stepped")
def stepped(gates: list[str]) -> int:
    """One step per gate; step i waits for gate i."""
    return sum(gated_step(gate, position) for position, gate in enumerate(gates, 1))


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@fl.workflow(name="painted")
def painted(colour: Colour = Colour.RED, *shades: int) -> str:
    return f"{colour.value} {list(shades)}"
