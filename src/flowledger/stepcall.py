"""One step call's recording protocol: replay what is recorded, count each attempt,
record its outcome (a retried failure, the final result), and time attempts out.
Shared by sync steps, async steps and child-run steps; the executor drives it."""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import ids
from .errors import (
    CancelledSignal,
    DeadlineExceeded,
    LeaseLost,
    NonDeterminismError,
    PausedSignal,
    RateLimitNotFound,
    RunInterrupted,
    SkipStep,
    StepTimeout,
    StoreUnavailable,
    WorkerStopping,
)
from .logcapture import LogBuffer
from .rates import WAIT_SLICE_S, StepRate, wait_for
from .store import NewRun, SpoolingStore
from .workflow import RetryPolicy

if TYPE_CHECKING:
    from .executor import Execution


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def error_text(exc: BaseException) -> str:
    """An error as recorded: its type, message and traceback (JSON). The traceback starts
    at the user's code: the frames of flowledger that called it are left out."""
    kind = type(exc)
    frames = exc.__traceback__
    while frames is not None and frames.tb_next is not None \
            and frames.tb_frame.f_code.co_filename.startswith(_PACKAGE):
        frames = frames.tb_next
    return json.dumps({
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(kind, exc, frames)),
    })


def asyncio_module() -> Any:
    """asyncio, imported when async code first needs it (a running event loop has it
    loaded already): synchronous programs never pay for its import."""
    import asyncio  # noqa: PLC0415 (start-up time: see the docstring)

    return asyncio


def interruption(execution: Execution) -> RunInterrupted:
    """Why ``execution`` may no longer advance its run: cancelled, paused, or another
    execution holds it now."""
    state = execution.runtime.store.get_status(execution.run_id)
    if state is not None and state[0] == "cancelled":
        return CancelledSignal(execution.run_id_text)
    if state is not None and state[0] == "paused":
        return PausedSignal(execution.run_id_text)
    return LeaseLost(f"run {execution.run_id_text} is no longer held by this execution")


class StepCall:
    """The recording protocol of one step call, shared by sync, async and child calls."""

    def __init__(self, execution: Execution, name: str, position: int, policy: RetryPolicy,
                 timeout: float | None, hint: Any, input_text: Callable[[], str | None]) -> None:
        self.execution = execution
        self.name = name
        self.position = position
        self.policy = policy
        self.step_timeout = timeout
        self.hint = hint
        self.input_text = input_text
        self.label = f"step {name!r} (position {position})"
        self.child: NewRun | None = None
        # Context values set during the current attempt: committed with its result.
        self.pending_context: dict[str, tuple[str | None, Any]] = {}
        # A context value the current attempt set was changed by redaction: the step is
        # then recorded as not replayable (docs/redaction.md).
        self.context_redacted = False
        # What the current attempt logs, written with its outcome (None: not captured).
        self.logs: LogBuffer | None = None
        self.capture_print = execution.runtime.capture_print
        self.recorded = execution.recorded.get(position)
        # A resumed *failed* step gets a fresh retry budget (resuming means "try again");
        # an attempt interrupted by a crash still counts against the budget.
        failed_before = self.recorded is not None and self.recorded.status == "failed"
        self.budget_start = self.recorded.attempts if failed_before and self.recorded else 0
        # The row's counter is incremented by each begin; fencing makes this execution the
        # only writer, so the count is known here without reading it back.
        self.attempt = self.recorded.attempts if self.recorded is not None else 0
        self.started_at: int | None = None

    def replay(self) -> tuple[bool, Any]:
        row = self.recorded
        if row is None:
            return False, None
        if row.name != self.name:
            raise NonDeterminismError(
                f"run {self.execution.run_id_text}: position {self.position} was recorded as "
                f"step {row.name!r}, but the code now calls {self.name!r}; workflow code must "
                "call its steps in the same order on resume (fork the run to change it)")
        # A step whose recorded output (or context) was redacted runs again instead.
        if row.status in ("completed", "skipped") and not row.redacted:
            execution = self.execution
            text = execution.runtime.payload(execution.run_id, execution.owner, row.output)
            if text is None:
                return True, None
            return True, execution.runtime.serializer.loads(text, self.hint)
        return False, None

    def begin(self) -> None:
        execution = self.execution
        stopping = execution.runtime.stopping
        if stopping is not None and stopping.is_set():
            raise WorkerStopping(f"run {execution.run_id_text} stops before step "
                                 f"{self.name!r} (position {self.position}): its worker "
                                 "is shutting down")
        if execution.deadline_at is not None and ids.now_us() >= execution.deadline_at:
            raise DeadlineExceeded(f"run {execution.run_id_text} passed its deadline before "
                                   f"step {self.name!r} (position {self.position})")
        store = execution.runtime.store
        self.started_at = ids.now_us()  # the attempt's start, as recorded
        if self.child is not None:  # a child run made by this attempt starts within it
            self.child.created_at = self.started_at
        if not store.begin_step(execution.run_id, execution.token, self.position, self.name,
                                self.input_text(), self.started_at, self.child,
                                attempt=self.attempt + 1):
            raise interruption(execution)
        self.attempt += 1
        self.pending_context = {}
        self.context_redacted = False
        self.logs = LogBuffer() if execution.runtime.capture_logs else None

    # -- shared rate limits (docs/rate-limits.md) --------------------------------------
    def _reserve_rate(self, rate: StepRate, args: Sequence[Any],
                      kwargs: Mapping[str, Any]) -> float:
        """Reserve this attempt's units of its limit: when it may start (``time.time()``
        seconds; 0: at once). The wait is kept with what the attempt logs."""
        units = rate.cost(args, kwargs)
        store = self.execution.runtime.store
        try:
            reserved = store.reserve_rate(rate.name, units)
        except StoreUnavailable:
            if not isinstance(store, SpoolingStore):
                raise
            return 0.0  # best_effort: an outage never stops execution (limit not applied)
        if reserved is None:
            raise RateLimitNotFound(
                f"{self.label} uses rate limit {rate.name!r}, which is not set: set it with "
                f"ledger.set_rate_limit({rate.name!r}, …) or `flowledger rate-limit set`")
        if self.logs is not None:
            self.logs.add(time.time(), "INFO", "flowledger.ratelimit",
                          f"rate limit {rate.name!r}: waited {reserved[1] / 1_000_000:.3f}s "
                          f"for {units:g} unit{'' if units == 1 else 's'}", None)
        return reserved[0] / 1_000_000

    def _still_wanted(self) -> None:
        """Raise when the run was cancelled, paused or taken over during a wait."""
        execution = self.execution
        state = execution.runtime.store.get_status(execution.run_id)
        if state is None or state[0] != "running" or state[1] != execution.token:
            raise interruption(execution)

    def wait_for_rate(self, rate: StepRate | None, args: Sequence[Any],
                      kwargs: Mapping[str, Any]) -> None:
        """After ``begin``, right before the step's body: reserve its units and wait (no
        transaction open, no busy loop) until the reserved start. Reserving last keeps
        the attempt's begin write out of the spacing of the calls."""
        if rate is not None:
            until = self._reserve_rate(rate, args, kwargs)
            if not wait_for(until, self.execution.runtime.stopping, self._still_wanted):
                raise self._stopping()

    async def wait_for_rate_async(self, rate: StepRate | None, args: Sequence[Any],
                                  kwargs: Mapping[str, Any]) -> None:
        if rate is None:
            return
        end = self._reserve_rate(rate, args, kwargs)
        stopping = self.execution.runtime.stopping
        while (left := end - time.time()) > 0:
            await asyncio_module().sleep(min(left, WAIT_SLICE_S))
            if stopping is not None and stopping.is_set():
                raise self._stopping()
            if end - time.time() > 0:
                self._still_wanted()

    def _stopping(self) -> WorkerStopping:
        return WorkerStopping(f"run {self.execution.run_id_text} stops in {self.label}, "
                              "waiting for its rate limit: its worker is shutting down")

    def timeout(self) -> float | None:
        deadline = self.execution.deadline_at
        if deadline is None:
            return self.step_timeout
        left = max((deadline - ids.now_us()) / 1_000_000, 0.001)
        return left if self.step_timeout is None else min(left, self.step_timeout)

    def _finish(self, status: str, output: str | None, error: str | None,
                redacted: bool = False) -> None:
        execution = self.execution
        pending = self.pending_context if status != "failed" else {}
        texts = {name: text for name, (text, _) in pending.items()} if pending else None
        logs, dropped = self._take_logs()
        now = ids.now_us()
        redacted = redacted or (bool(pending) and self.context_redacted)
        if not execution.runtime.store.finish_step(execution.run_id, execution.token,
                                                   self.position, status, output, error,
                                                   now, texts, logs, dropped,
                                                   redacted=redacted):
            raise LeaseLost(f"run {execution.run_id_text} was taken over while step "
                            f"{self.name!r} ran; its result was not recorded")
        self.traced(status, now, error)
        for name, (_, value) in pending.items():
            execution.context[name] = value

    def _take_logs(self) -> tuple[str | None, int]:
        """The attempt's log records (JSON) and dropped count; capture ends here."""
        buffer, self.logs = self.logs, None
        if buffer is None:
            return None, 0
        text, dropped = buffer.encoded()
        redactor = self.execution.runtime.redactor
        if text is not None and redactor is not None:
            text = redactor.log_records(text)
        return text, dropped

    def traced(self, status: str, ended_at: int, error: str | None) -> None:
        """The attempt's outcome was committed: its span goes out when tracing is on."""
        telemetry = self.execution.runtime.telemetry
        if telemetry is not None:
            started = self.started_at  # else a woken wait's, begun by an earlier execution
            if started is None and self.recorded is not None:
                started = self.recorded.started_at
            telemetry.attempt_ended(self, status, started, ended_at, error)

    def succeeded(self, result: Any) -> Any:
        try:
            text, redacted = self.execution.encode_output(result, f"output of {self.label}",
                                                          self.position)
        except Exception as exc:
            self._finish("failed", None, self.execution.runtime.error(exc))
            raise
        self._finish("completed", text, None, redacted)
        return result

    def skipped(self, skip: SkipStep) -> Any:
        text, redacted = self.execution.encode_output(
            skip.value, f"value of skipped step {self.name!r}")
        reason = json.dumps({"type": "skipped", "message": skip.reason, "traceback": ""})
        redactor = self.execution.runtime.redactor
        self._finish("skipped", text,
                     reason if redactor is None else redactor.error_json(reason), redacted)
        return skip.value

    def failed(self, exc: BaseException) -> float | None:
        """Record a failed attempt. Returns the delay before retrying, or None if final."""
        if not isinstance(exc, Exception) or isinstance(exc, DeadlineExceeded):
            return None  # interrupts (Ctrl-C, cancellation, lease loss) record nothing here
        spent = self.attempt - self.budget_start
        deadline = self.execution.deadline_at
        if spent < self.policy.max_attempts and self.policy.retryable(exc):
            delay = self.policy.delay(spent)
            # An error that says when to try again (an HTTP Retry-After) is waited for,
            # up to the policy's longest backoff.
            wanted = getattr(exc, "retry_after", None)
            if isinstance(wanted, int | float) and wanted > delay:
                delay = min(float(wanted), max(self.policy.max_backoff, delay))
            now = ids.now_us()
            retry_at = now + int(delay * 1_000_000)
            if deadline is None or retry_at < deadline:
                execution = self.execution
                logs, dropped = self._take_logs()
                error = execution.runtime.error(exc)
                execution.runtime.store.record_retry(execution.run_id, execution.token,
                                                     self.position, error, now, retry_at,
                                                     logs, dropped)
                self.traced("failed", now, error)
                return delay
        self._finish("failed", None, self.execution.runtime.error(exc))
        return None


async def await_with_timeout(awaitable: Awaitable[Any], timeout: float | None,
                              label: str) -> Any:
    if timeout is None:
        return await awaitable
    try:
        async with asyncio_module().timeout(timeout) as scope:
            result = await awaitable
    except TimeoutError:
        raise StepTimeout(f"{label} exceeded its timeout of {timeout:g}s") from None
    if scope.expired():
        # The body caught its cancellation and returned anyway: the attempt still ran
        # out of time, and what it returned afterwards is not its result.
        raise StepTimeout(f"{label} exceeded its timeout of {timeout:g}s (it returned "
                          "after being cancelled; the value is discarded)")
    return result
