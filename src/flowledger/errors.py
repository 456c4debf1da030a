"""Every error flowledger raises derives from :class:`FlowledgerError`.

Each class documents when it is raised; the message carries the specifics (run id,
position, step names) so a single line tells the user what happened.
"""

from __future__ import annotations

from typing import ClassVar


class FlowledgerError(Exception):
    """Root of all flowledger errors.

    ``category`` says what kind of error it is, once, for every interface: the CLI
    derives its exit code from it and the HTTP API its status and error code
    (``not_found``, ``invalid_input``, ``invalid_cursor``, ``payload_too_large``,
    ``conflict``, ``store_full``, ``store_unavailable``, ``store_error``, ``failed``).
    """

    category: ClassVar[str] = "failed"


class ConfigurationError(FlowledgerError):
    """A Ledger option or database URL is invalid."""

    category = "invalid_input"


class StoreError(FlowledgerError):
    """The database refused an operation (the message carries the database's reason).

    ``database`` is the store's URL (password hidden), kept out of the message so the
    message can be shown to API clients.
    """

    category = "store_error"

    def __init__(self, message: str, database: str | None = None) -> None:
        super().__init__(message)
        self.database = database


class StoreUnavailable(StoreError):
    """The database could not be reached, or the connection to it was lost."""

    category = "store_unavailable"


class StoreFull(StoreError):
    """The disk holding the database is full: nothing more can be recorded until space
    is freed (purge old runs, or grow the disk). What was committed is intact."""

    category = "store_full"


class DatabaseNotFound(FlowledgerError, LookupError):
    """There is no flowledger database at that location (nothing was recorded there), and
    the operation only reads: it does not create one."""

    category = "not_found"


class RunNotFound(FlowledgerError, LookupError):
    """No run with this id exists (or it belongs to another owner)."""

    category = "not_found"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r}")
        self.run_id = run_id


class StepNotFound(FlowledgerError, LookupError):
    """The run has no step at that position."""

    category = "not_found"

    def __init__(self, run_id: str, position: int) -> None:
        super().__init__(f"run {run_id} has no step at position {position}")
        self.run_id = run_id
        self.position = position


class AmbiguousRunId(FlowledgerError, LookupError):
    """A run id prefix matches more than one run."""

    category = "invalid_input"


class ArtifactNotFound(FlowledgerError, LookupError):
    """The run has no artifact under that key."""

    category = "not_found"


class ScheduleNotFound(FlowledgerError, LookupError):
    """No schedule of that name exists (for this owner)."""

    category = "not_found"


class TokenNotFound(FlowledgerError, LookupError):
    """No live API token has this id."""

    category = "not_found"


class WebhookNotFound(FlowledgerError, LookupError):
    """No webhook subscription or delivery has this id (for this owner)."""

    category = "not_found"


class InvalidCursor(FlowledgerError, ValueError):
    """A pagination cursor was not produced by ``Ledger.runs()``."""

    category = "invalid_cursor"


class WorkflowNotFound(FlowledgerError, LookupError):
    """A workflow could not be found in the registry nor imported from its entrypoint."""

    category = "not_found"


class SpecNotFound(FlowledgerError, LookupError):
    """No spec of that name (and version) is registered for this owner."""

    category = "not_found"


class SpecVersionConflict(FlowledgerError):
    """Another text is already registered under this spec name and version: versions are
    immutable (change ``version:``, or leave it out to version by content)."""

    category = "conflict"


class WorkflowVersionMismatch(FlowledgerError):
    """The code's workflow version differs from the version the run was recorded with."""

    category = "conflict"


class RunAlreadyRunning(FlowledgerError):
    """The run is being executed by a live process; it cannot be resumed twice."""

    category = "conflict"


class RunIdConflict(FlowledgerError):
    """A run id given with ``run_id=`` is already the id of a run of another workflow,
    or of another owner's run."""

    category = "conflict"


class RunFailed(FlowledgerError):
    """A run ended in failure. ``run_id`` names it; ``__cause__`` holds the original error."""

    def __init__(self, run_id: str, error_type: str, message: str) -> None:
        super().__init__(f"run {run_id} failed: {error_type}: {message}")
        self.run_id = run_id
        self.error_type = error_type
        self.error_message = message


class RunCancelled(FlowledgerError):
    """The run was cancelled before it finished."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} was cancelled")
        self.run_id = run_id


class RunPaused(FlowledgerError):
    """The run was paused (``Ledger.pause``) before it finished: it stopped before its
    next step; ``Ledger.resume`` continues it."""

    category = "conflict"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} was paused; resume it to continue "
                         f"(flowledger resume {run_id})")
        self.run_id = run_id


class RunWaiting(FlowledgerError):
    """The run is waiting (``fl.sleep``, ``fl.wait_for_event``) and holds no worker: a
    worker claims it again when its timer is due or the event it waits for is sent."""

    category = "conflict"

    def __init__(self, run_id: str, waiting_for: str | None, wake_at: int | None) -> None:
        what = (f"for event {waiting_for!r}" if waiting_for is not None
                else "for its timer")
        super().__init__(f"run {run_id} is waiting {what}; a worker continues it")
        self.run_id = run_id
        self.waiting_for = waiting_for
        self.wake_at = wake_at


class WaitTimeout(FlowledgerError, TimeoutError):
    """``fl.wait_for_event`` reached its timeout before the event was sent. The workflow
    may catch it (a resume replays the timeout, it does not wait again).

    Example::

        try:
            decision = fl.wait_for_event("approve", timeout=timedelta(days=2))
        except fl.WaitTimeout:
            decision = {"approved": False, "by": "timeout", "note": ""}
    """

    def __init__(self, message: str, event: str = "") -> None:
        super().__init__(message)
        self.event = event


class EventRejected(FlowledgerError, ValueError):
    """``Ledger.send_event``: the payload does not fit the model the run waits with (or
    cannot be serialized); nothing was delivered."""

    category = "invalid_input"


class RunNotWaitable(FlowledgerError):
    """An event was sent to a run that has finished: nothing would ever consume it."""

    category = "conflict"


class NonDeterminismError(FlowledgerError):
    """On resume the workflow called a different step than the one recorded at a position."""


class SerializationError(FlowledgerError, TypeError):
    """A value could not be serialized for the store; the message names the value and why."""

    category = "invalid_input"


class RedactedInputs(FlowledgerError, ValueError):
    """Run inputs that redaction changed (``Ledger(redact=...)``) cannot be executed from
    the store: resuming such a run in another process, or submitting such inputs to a
    queue, is refused. Pass secrets by reference (a secret manager's name, an environment
    variable) instead of as inputs. ``fields`` names the redacted inputs.

    Example: ``except fl.RedactedInputs as exc: print(exc.fields)``
    """

    category = "invalid_input"

    def __init__(self, message: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.fields = fields


class PayloadTooLarge(FlowledgerError, ValueError):
    """A serialized input or output exceeds the Ledger's ``max_payload_bytes``."""

    category = "payload_too_large"


class StepTimeout(FlowledgerError, TimeoutError):
    """A step attempt ran longer than its ``timeout``."""


class DeadlineExceeded(FlowledgerError, TimeoutError):
    """The run passed its deadline; it is recorded as failed."""


class PayloadKeyMissing(FlowledgerError):
    """A payload is sealed with a key this process's keyring does not hold (or with an
    owner key that was shredded). ``key_id`` names the key; ``shredded`` tells which.
    Over HTTP: 409 (what the server holds cannot be read with its keys)."""

    category = "conflict"

    def __init__(self, message: str, key_id: str, shredded: bool = False) -> None:
        super().__init__(message)
        self.key_id = key_id
        self.shredded = shredded


class PayloadTampered(FlowledgerError):
    """A sealed payload failed authentication: it was altered, or moved from the record
    it was sealed for, or the keyring's key of that id is not the one that sealed it.
    Its content is never returned. Over HTTP: 409."""

    category = "conflict"


class NotInRun(FlowledgerError, RuntimeError):
    """An operation that needs a running workflow or step was called outside of one."""


class SkipStep(Exception):
    """Raise inside a step to record it as ``skipped``; the step call returns ``value``.

    Example::

        @fl.step()
        def fetch_new(since: str) -> list[str]:
            if not has_changes(since):
                raise fl.SkipStep("nothing new", value=[])
    """

    def __init__(self, reason: str = "", value: object = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.value = value


class NonRetryable(Exception):
    """Base for errors a step should never retry; subclass it or raise it directly."""


class RateLimitNotFound(ConfigurationError, NonRetryable, LookupError):
    """No rate limit of that name exists (a step naming one fails, never retried)."""

    category = "not_found"


class RetentionPolicyNotFound(FlowledgerError, LookupError):
    """No retention policy has this id (``flowledger retention ls`` lists them)."""

    category = "not_found"


class ArchiveError(FlowledgerError):
    """A retention archive could not be written, verified or read (the message names
    the archive and why). Nothing was deleted, or restored, from that archive."""

    category = "invalid_input"


class LeaseNotHeld(FlowledgerError):
    """The lease of a duty (applying retention policies) passed to another process
    before this one's write: nothing was written, the other process carries on."""

    category = "conflict"


class RunInterrupted(BaseException):
    """Internal signal that stops workflow code; not an ``Exception`` so user code won't swallow it.

    Raised at a step call when the run was cancelled or another process took it over.
    """


class LeaseLost(RunInterrupted):
    """Another execution took over this run; this one must stop without writing."""


class CancelledSignal(RunInterrupted):
    """The run was cancelled; workflow code stops before its next step."""


class PausedSignal(RunInterrupted):
    """The run was paused; workflow code stops before its next step."""


class SuspendedSignal(RunInterrupted):
    """The run suspended itself at a durable sleep or wait: it holds no worker now."""

    def __init__(self, waiting_for: str | None, wake_at: int | None) -> None:
        super().__init__(waiting_for)
        self.waiting_for = waiting_for
        self.wake_at = wake_at


class WorkerStopping(RunInterrupted):
    """The worker executing this run is shutting down: the run stops before its next step
    and goes back to its queue, where another worker resumes it."""
