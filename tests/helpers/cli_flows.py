"""Workflows the CLI tests run by target (``tests.helpers.cli_flows:greet``)."""

from __future__ import annotations

import flowledger as fl

attempts = {"flaky": 0}


@fl.step()
def shout(name: str) -> str:
    return name.upper()


@fl.step()
def punctuate(text: str, mark: str) -> str:
    return text + mark


@fl.workflow(name="cli_greet")
def greet(name: str, mark: str = "!") -> dict[str, str]:
    return {"greeting": punctuate(shout(name), mark)}


@fl.step()
def sometimes(n: int) -> int:
    attempts["flaky"] += 1
    if n < 0 and attempts["flaky"] == 1:
        raise ValueError("negative on first try")
    return abs(n)


@fl.workflow(name="cli_flaky")
def flaky(n: int) -> int:
    return sometimes(n) + 1


@fl.workflow(name="cli_family")
def family(name: str) -> list[dict[str, str]]:
    return [greet(name), greet(name + "2")]


@fl.step()
def odd() -> dict[str, float]:
    return {"nan": float("nan"), "inf": float("inf"), "ok": 1.5}


@fl.workflow(name="cli_odd_numbers")
def odd_numbers() -> dict[str, float]:
    return odd()


@fl.step(retries=2, backoff=0.001)
def wobbly() -> str:
    attempts["wobbly"] = attempts.get("wobbly", 0) + 1
    if attempts["wobbly"] < 3:
        raise ConnectionError(f"wobble number {attempts['wobbly']}")
    return "steady"


@fl.workflow(name="cli_wobbly")
def wobbly_flow() -> str:
    return wobbly()
