"""A webhook dispatcher in its own process, for the crash tests (run: ``python -m
tests.helpers.webhook_dispatcher DB_URL CLAIM_TIMEOUT``). It prints ``ready``, then a
line per attempt it records (``delivered <id>``, ``failed <id>``, ``lost <id>``), and
dispatches until killed."""

from __future__ import annotations

import logging
import sys

import flowledger as fl
from flowledger.webhook_dispatch import WebhookDispatcher


class Lines(logging.Handler):
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


def main(url: str, claim_timeout: str) -> None:
    logger = logging.getLogger("flowledger.webhooks")
    logger.setLevel(logging.INFO)
    logger.addHandler(Lines())
    ledger = fl.Ledger(url)
    dispatcher = WebhookDispatcher(ledger, poll_interval=0.02, backoff=0.05,
                                   claim_timeout=float(claim_timeout), allow_private=True)
    print("ready", flush=True)
    dispatcher.run()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
