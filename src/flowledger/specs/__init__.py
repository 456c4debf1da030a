"""Workflows as files: YAML or JSON specs of LLM, MCP tool, HTTP, shell and Python steps.

``load_spec(path)`` / ``parse_spec(text)`` validate a spec into a ``Spec``, which runs
like a ``@workflow`` (``ledger.run(spec, **inputs)``, ``ledger.submit(spec, ...)``).
Its text is stored with every run, so resume, fork and recovery use the recorded text.

Example::

    spec = fl.load_spec("flows/triage.yaml")
    output = fl.Ledger().run(spec, issue=42)
"""

from __future__ import annotations

from .document import Spec, load_spec, parse_spec
from .model import spec_schema
from .source import SpecError, SpecProblem

__all__ = ["Spec", "SpecError", "SpecProblem", "load_spec", "parse_spec", "spec_schema"]
