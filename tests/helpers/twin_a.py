"""Two modules registering a workflow of the same name (see test_same_name_workflows)."""

from __future__ import annotations

import flowledger as fl


@fl.step()
def from_a(x: str) -> str:
    return f"a:{x}"


@fl.workflow(name="twin")
def pipeline(x: str) -> str:
    return from_a(x)
