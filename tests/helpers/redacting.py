"""Workflows whose values redaction changes, run in child processes (and workers) that
the redaction tests SIGKILL and resume. The Ledger redacts what FLOWLEDGER_REDACT
lists (the tests set ``api_key,password``).

Every step appends a line to the file named by FLOWLEDGER_TEST_LOG; the step ``use``
prints ``inflight`` and waits for a line on stdin when BLOCK is set, so a test can kill
the process while it runs.

Usage: python -m tests.helpers.redacting start URL WORKFLOW
       python -m tests.helpers.redacting resume URL RUN_ID
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import flowledger as fl

LOG = os.environ.get("FLOWLEDGER_TEST_LOG", os.devnull)
SECRET_KEY = "KEY-SECRET-4f1c"
SECRET_PASSWORD = "PW-SECRET-9a7e"


def side_effect(line: str) -> None:
    with open(LOG, "a") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


@fl.step()
def fetch_credentials() -> dict[str, str]:
    side_effect("fetch")
    return {"user": "ana", "api_key": SECRET_KEY}


@fl.step()
def count(n: int) -> int:
    side_effect(f"count {n}")
    return n * 2


@fl.step()
def use(api_key: str, doubled: int) -> str:
    side_effect("use")
    if os.environ.get("BLOCK") and api_key == SECRET_KEY:
        print("inflight", flush=True)
        sys.stdin.readline()
    # The real value, never the marker: a replayed redacted output would fail here.
    if api_key != SECRET_KEY:
        raise ValueError(f"use got {api_key!r} instead of the key")
    return f"used {len(api_key)} {doubled}"


@fl.workflow(name="redacted_output")
def redacted_output() -> str:
    credentials = fetch_credentials()
    return use(credentials["api_key"], count(21))


@fl.workflow(name="redacted_inputs")
def redacted_inputs(login: dict[str, Any]) -> str:
    doubled = count(1)
    return use(SECRET_KEY if login["password"] == SECRET_PASSWORD else "wrong", doubled)


@fl.step()
def leak() -> dict[str, str]:
    return {"password": "WORKER-SECRET-77"}


@fl.workflow(name="redacted_worker")
def redacted_worker() -> dict[str, str]:
    return leak()


def main(argv: list[str]) -> int:
    command, url = argv[0], argv[1]
    with fl.Ledger(url) as ledger:
        try:
            if command == "start":
                if argv[2] == "redacted_inputs":
                    handle = ledger.start(redacted_inputs,
                                          {"user": "ana", "password": SECRET_PASSWORD})
                else:
                    handle = ledger.start(redacted_output)
                print("run", handle.id, flush=True)
            elif command == "resume":
                handle = ledger.resume(argv[2])
            else:
                raise SystemExit(f"unknown command {command!r}")
            print("result", json.dumps(handle.result()), flush=True)
            return 0
        except fl.FlowledgerError as exc:
            print("error", type(exc).__name__, exc, flush=True)
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
