"""A workflow that stops at named checkpoints, one kind of write between each, so a test
can look at the records after every kind of write (the read path's revision tests).

The workflow runs in the test process (``Ledger.start``); at each checkpoint it waits
until the test has looked and calls ``proceed()``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import flowledger as fl

#: The checkpoints in order, each after one kind of write.
ORDER = ("started", "a-begun", "a-ended", "context", "artifact", "usage", "child-begun",
         "child-usage", "child")


class Checkpoints:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.reached: list[str] = []
        self._arrived = threading.Event()
        self._proceed = threading.Event()

    def __call__(self, name: str) -> None:
        self.reached.append(name)
        self._arrived.set()
        if not self._proceed.wait(60):
            raise TimeoutError("the test never let the workflow go on")
        self._proceed.clear()

    def walk(self, look: Callable[[str], None]) -> None:
        """For each checkpoint in order: wait for the workflow to reach it, ``look``,
        let it go on."""
        for name in ORDER:
            if not self._arrived.wait(60):
                raise AssertionError(f"the workflow never reached {name}")
            self._arrived.clear()
            assert self.reached[-1] == name, self.reached
            look(name)
            self._proceed.set()


CURRENT = Checkpoints()


@fl.step
def gated(label: str) -> str:
    CURRENT(f"{label}-begun")
    return label


@fl.step
def with_usage() -> int:
    fl.record_usage("gpt-4o-mini", input_tokens=5, output_tokens=1)
    CURRENT("usage")
    return 1


@fl.step
def child_usage() -> int:
    CURRENT("child-begun")
    fl.record_usage("gpt-4o-mini", input_tokens=5, output_tokens=1)
    CURRENT("child-usage")  # only the child wrote: its parent reads differently
    return 1


@fl.workflow(name="checkpoints-child")
def gated_child() -> int:
    return child_usage()


@fl.workflow(name="checkpoints")
def flow() -> str:
    CURRENT("started")
    gated("a")
    CURRENT("a-ended")
    fl.context.set("k", 1)
    CURRENT("context")
    fl.artifacts.save("x.txt", b"x")
    CURRENT("artifact")
    with_usage()
    gated_child()
    CURRENT("child")
    return "done"


def fresh() -> Checkpoints:
    """Start a new walk (one per test)."""
    CURRENT.reset()
    return CURRENT
