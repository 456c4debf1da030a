"""schemathesis against the served OpenAPI document: generated requests (valid and
invalid) against a real server on PostgreSQL, with real run ids mixed in, must never get
a 5xx nor an answer that contradicts the document."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import flowledger as fl
from tests.helpers.server import serving
from tests.helpers.workers import wait_until

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance,"
          "negative_data_rejection,missing_required_header,ignored_auth")


def test_schemathesis_finds_no_server_error_and_no_spec_violation(
        pg_database: str, tmp_path: Path) -> None:
    with fl.Ledger(pg_database) as ledger:
        token = ledger.create_token("schema").secret
    with serving(pg_database, "--workers", "1") as server, server.client(token) as api:
        ids = []
        for n in range(3):
            answer = api.post("/workflows/report/runs", json={"inputs": {"n": n}})
            ids.append(answer.json()["id"])
        wait_until(lambda: all(api.get(f"/runs/{i}").json()["status"] == "completed"
                               for i in ids), what="the seed runs to complete")
        config = tmp_path / "schemathesis.toml"
        config.write_text(
            f'headers = {{ Authorization = "Bearer {token}" }}\n'
            "[dictionaries.runs]\n"
            f"values = {json.dumps(ids)}\n"
            "[parameters]\n"
            '"path.run_id" = { dictionary = "runs", probability = 0.7 }\n')
        result = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
             f"{server.base}/openapi.json", "--checks", CHECKS, "--max-examples", "25",
             "--seed", "1", "--request-timeout", "30", "--no-color"],
            check=False, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        assert "No issues found" in result.stdout or "passed" in result.stdout
