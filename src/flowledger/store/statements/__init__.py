"""The SQL statements the store runs, one module per concern.

- ``steps.py``: the step hot path as text SQL written once for both dialects.
- ``runs.py``: finishing, cancelling and creating runs.
- ``history.py``: attempts interrupted by takeovers or run ends.
- ``queues.py``: claiming runs and renewing leases.
- ``common.py``: pieces shared by several modules.

Statements that take no arguments are module-level constants, built once: constructing
SQLAlchemy expressions per call cost more than a commit on the step hot path.
"""
