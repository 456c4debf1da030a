"""Child processes of the webhook crash tests.

- ``python -m tests.helpers.webhook_dispatcher dispatch DB_URL CLAIM_TIMEOUT``: a webhook
  dispatcher; prints ``ready``, then a line per attempt it records (``delivered <id>``,
  ``failed <id>``, ``lost <id>``), and dispatches until killed.
- ``python -m tests.helpers.webhook_dispatcher complete DB_URL``: runs ``hooked_crash``
  to completion, prints ``completed <run id>`` and waits to be killed (it sends nothing).
"""

from __future__ import annotations

import logging
import sys

import flowledger as fl
from flowledger.webhook_dispatch import WebhookDispatcher


@fl.workflow(name="hooked-crash")
def hooked_crash(n: int) -> int:
    return n * 2


class Lines(logging.Handler):
    """The dispatcher's log as lines the test reads."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        words = message.split()
        delivery = words[2] if len(words) > 2 else "?"
        if ": delivered" in message:
            print(f"delivered {delivery}", flush=True)
        elif "claim expired" in message:
            print(f"lost {delivery}", flush=True)
        elif "failed" in message:
            print(f"failed {delivery}", flush=True)


def dispatch(url: str, claim_timeout: str) -> None:
    logger = logging.getLogger("flowledger.webhooks")
    logger.setLevel(logging.INFO)
    logger.addHandler(Lines())
    ledger = fl.Ledger(url)
    dispatcher = WebhookDispatcher(ledger, poll_interval=0.02, backoff=0.05,
                                   claim_timeout=float(claim_timeout), allow_private=True)
    print("ready", flush=True)
    dispatcher.run()


def complete(url: str) -> None:
    ledger = fl.Ledger(url)
    handle = ledger.start(hooked_crash, 21)
    handle.result()
    print(f"completed {handle.id}", flush=True)
    sys.stdin.readline()  # killed here


if __name__ == "__main__":
    if sys.argv[1] == "dispatch":
        dispatch(sys.argv[2], sys.argv[3])
    else:
        complete(sys.argv[2])
