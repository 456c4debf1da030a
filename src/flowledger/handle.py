"""``RunHandle``: what starting, submitting or resuming a run gives back."""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from .errors import FlowledgerError, RunCancelled, RunFailed, RunInterrupted
from .models import Run, RunStatus

if TYPE_CHECKING:
    from .ledgerbase import LedgerBase


class RunHandle:
    """A started run. ``result()`` waits for it; ``status()`` reads the store.

    Example::

        handle = ledger.start(triage, 42)
        print(handle.id, handle.status())
        output = handle.result(timeout=60)
    """

    def __init__(self, ledger: LedgerBase, run_id: str, future: Future[Any] | None = None,
                 *, created: bool = True) -> None:
        self.ledger = ledger
        self.id = run_id
        #: False when ``submit`` found the run already recorded under its idempotency key.
        self.created = created
        self._future = future

    def __repr__(self) -> str:
        return f"RunHandle({self.id!r})"

    def status(self) -> RunStatus:
        """The run's status as recorded now."""
        return self.ledger.get(self.id, steps=False).status

    def get(self) -> Run:
        """The run as recorded now, with its steps."""
        return self.ledger.get(self.id)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the run to end; True if it has."""
        if self._future is not None:
            try:
                self._future.exception(timeout)
            except TimeoutError:
                return False
            return True
        try:
            self.ledger.result(self.id, timeout)
        except TimeoutError:
            return False
        except FlowledgerError:
            pass
        return True

    def done(self) -> bool:
        """Whether the run has ended."""
        if self._future is not None:
            return self._future.done()
        return self.status().finished

    def result(self, timeout: float | None = None) -> Any:
        """The run's output; raises RunFailed / RunCancelled (both carry ``run_id``).

        Waits for the run to end, then answers what its record says at that time: a run
        cancelled or failed here and since resumed elsewhere gives that resumption's
        outcome.
        """
        if self._future is None:
            return self.ledger.result(self.id, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            return self._future.result(timeout)
        except RunFailed:
            if self.status() is RunStatus.FAILED:
                raise  # still what the record says; keeps the original error as cause
        except RunCancelled:
            if self.status() is RunStatus.CANCELLED:
                raise
        except RunInterrupted:
            pass  # this execution was superseded (taken over, or its worker stopped)
        left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        return self.ledger.result(self.id, left)


def done_future(value: Any) -> Future[Any]:
    """A future that already holds ``value`` (a handle on a run that has completed)."""
    future: Future[Any] = Future()
    future.set_result(value)
    return future


__all__ = ["RunHandle", "done_future"]
