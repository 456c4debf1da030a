"""A schedule declared in code: workers started with ``--app`` on this module store it."""

from __future__ import annotations

import flowledger as fl
from tests.helpers.worker_app import one_step

fl.schedule(one_step, cron="* * * * * *", name="declared_every_second", inputs={"n": 1},
            queue="declared")
