"""How values look on a page: the Jinja2 environment and its filters (durations, costs,
short ids, times, statuses), shared by every page.

Example::

    env = environment()
    env.from_string("{{ 3725.5 | duration }}").render()   # '1 h 2 min'
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

TEMPLATES = Path(__file__).parent / "templates"
NONE = "\u2013"  # an en dash: no value

# Status → (symbol, words): status is never shown by colour alone.
STATUSES = {
    "pending": ("◷", "pending"), "running": ("▶", "running"),
    "completed": ("✔", "completed"), "failed": ("✖", "failed"),
    "cancelled": ("⊘", "cancelled"), "skipped": ("↷", "skipped"),
    "interrupted": ("⚡", "interrupted"), "stalled": ("⚠", "stalled"),
    "unrecorded": ("·", "unrecorded"), "paused": ("‖", "paused"),
    "waiting": ("◌", "waiting"),
}


def seconds_of(value: timedelta | float | None) -> float | None:
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def duration(value: timedelta | float | None) -> str:
    """``0.0123`` → ``12 ms``; ``75`` → ``1 min 15 s``: two units at most."""
    seconds = seconds_of(value)
    if seconds is None:
        return NONE
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def cost(value: float | None) -> str:
    """US dollars with as many decimals as a small amount needs: ``$0.0042``, ``$12.50``."""
    if value is None:
        return NONE
    if value == 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}"
    decimals = min(max(2, 1 - math.floor(math.log10(abs(value)))), 8)  # two significant digits
    return f"${value:.{decimals}f}"


def count(value: int | None) -> str:
    """``1234567`` → ``1.2M``; small numbers as they are, with thousands separators."""
    if value is None:
        return NONE
    if abs(value) >= 10_000_000:
        return f"{value / 1e6:.0f}M"
    if abs(value) >= 1_000_000:
        return f"{value / 1e6:.1f}M"
    return f"{value:,}"


def short_id(value: str | None) -> str:
    """The prefix the CLI prints (every interface takes an unambiguous prefix)."""
    return "" if value is None else str(value)[:13]


def when(value: datetime | str | None) -> Markup:
    """A ``<time>`` the browser shows in its time zone (UTC in its title)."""
    if value is None:
        return Markup(NONE)
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    utc = moment.astimezone(UTC)
    iso = utc.isoformat(timespec="milliseconds")
    shown = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup(f'<time datetime="{iso}" title="{shown}">{shown}</time>')


def status_badge(status: str | None) -> Markup:
    name = str(status or "unknown")
    symbol, words = STATUSES.get(name, ("?", name))
    return Markup(f'<span class="status s-{escape(name)}"><span aria-hidden="true">'
                  f'{symbol}</span> {escape(words)}</span>')


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=str, ensure_ascii=False)


def delta_seconds(a: timedelta | float | None, b: timedelta | float | None) -> str:
    """B against A: ``+1.2 s (+40%)``."""
    first, second = seconds_of(a), seconds_of(b)
    if first is None or second is None:
        return NONE
    change = second - first
    sign = "+" if change >= 0 else "\u2212"
    share = f" ({sign}{abs(change) / first * 100:.0f}%)" if first else ""
    return f"{sign}{duration(abs(change))}{share}"


def delta_cost(a: float | None, b: float | None) -> str:
    if a is None and b is None:
        return NONE
    change = (b or 0.0) - (a or 0.0)
    if change == 0:
        return "same"
    sign = "+" if change > 0 else "\u2212"
    return f"{sign}{cost(abs(change))}"


def step_cost(step: Any) -> float | None:
    """What a step's LLM calls cost (None without calls)."""
    if step is None or not step.usage:
        return None
    return sum(call.cost_usd or 0.0 for call in step.usage)


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True, auto_reload=False)
    env.filters.update(duration=duration, cost=cost, count=count, short=short_id,
                       when=when, status=status_badge, pretty=pretty_json)
    env.globals.update(delta_seconds=delta_seconds, delta_cost=delta_cost,
                       step_cost=step_cost, is_mapping=lambda v: isinstance(v, dict),
                       is_list=lambda v: isinstance(v, list))
    return env
