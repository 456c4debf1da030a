"""Real UI server processes for the browser tests: ``flowledger ui`` (a one-time login
URL on its standard output) and ``flowledger serve`` (token logins under /ui/)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

import httpx

from tests.helpers.procs import CHILD_PATH, ROOT
from tests.helpers.server import ServerProcess, free_port
from tests.helpers.workers import wait_until

UI_APP = "tests.helpers.ui_app"


class LocalUi:
    """``flowledger ui`` on a free port; ``login_url`` is the URL it printed."""

    def __init__(self, db_url: str, *options: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.out = tempfile.NamedTemporaryFile(mode="w+", suffix=".out")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flowledger", "--db", db_url, "ui", "--port",
             str(self.port), "--app", UI_APP, *options],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=CHILD_PATH), stdout=self.out,
            stderr=subprocess.STDOUT, text=True)
        self.login_url = ""
        wait_until(self._ready, timeout=60, what="flowledger ui to print its URL and answer")

    def output(self) -> str:
        with open(self.out.name) as text:
            return text.read()

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"flowledger ui exited {self.proc.returncode}: "
                                 f"{self.output()}")
        found = re.search(r"(http://127\.0\.0\.1:\d+/ui/login\?token=\S+)", self.output())
        if not found:
            return False
        self.login_url = found.group(1)
        try:
            return httpx.get(f"{self.base}/api/v1/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


def team_server(db_url: str, *options: str) -> ServerProcess:
    """``flowledger serve`` with the UI workflows and one in-process worker."""
    return ServerProcess(db_url, "--app", UI_APP, "--workers", "1", *options)
