"""LLM usage and cost: priced by genai-prices, rolled up through child runs."""

from __future__ import annotations

import logging
from datetime import timedelta
from types import SimpleNamespace

import genai_prices
import pytest

import flowledger as fl


def expected_cost(model: str, provider: str | None, inp: int, out: int, cached: int = 0) -> float:
    return float(genai_prices.calc_price(
        genai_prices.Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cached or None),
        model, provider_id=provider).total_price)


@fl.step()
def ask(model: str, inp: int, out: int) -> str:
    fl.record_usage(model, input_tokens=inp, output_tokens=out, provider="openai")
    return f"{model} answered"


@fl.step()
def ask_twice() -> int:
    fl.record_usage("gpt-4o", input_tokens=1000, output_tokens=200, cached_input_tokens=400,
                    reasoning_tokens=0, provider="openai")
    fl.record_usage("claude-sonnet-4-5", input_tokens=300, output_tokens=50,
                    provider="anthropic")
    return 2


@fl.workflow(name="usage_child")
def child(n: int) -> str:
    return ask("gpt-4o-mini", 100 * n, 10 * n)


@fl.workflow(name="usage_parent")
def parent() -> list[str]:
    ask_twice()
    return [child(1), child(2)]


def test_costs_match_genai_prices_and_roll_up_through_children(ledger: fl.Ledger) -> None:
    handle = ledger.start(parent)
    handle.result(timeout=30)
    run = ledger.get(handle.id)
    first = run.steps[0]
    assert [(u.model, u.input_tokens, u.output_tokens, u.cached_input_tokens)
            for u in first.usage] == [("gpt-4o", 1000, 200, 400),
                                      ("claude-sonnet-4-5", 300, 50, 0)]
    gpt = expected_cost("gpt-4o", "openai", 1000, 200, 400)
    claude = expected_cost("claude-sonnet-4-5", "anthropic", 300, 50)
    assert first.usage[0].cost_usd == pytest.approx(gpt)
    assert first.usage[1].cost_usd == pytest.approx(claude)
    assert first.usage[0].prices_version.startswith("genai-prices ")
    assert first.usage_totals.cost_usd == pytest.approx(gpt + claude)

    children = [ledger.get(s.child_run_id) for s in run.steps[1:] if s.child_run_id]
    child_costs = [c.usage.cost_usd for c in children
                   if c.usage is not None and c.usage.cost_usd is not None]
    assert child_costs == [pytest.approx(expected_cost("gpt-4o-mini", "openai", 100, 10)),
                           pytest.approx(expected_cost("gpt-4o-mini", "openai", 200, 20))]
    assert run.usage is not None
    assert run.usage.calls == 4
    assert run.usage.input_tokens == 1000 + 300 + 100 + 200
    assert run.usage.output_tokens == 200 + 50 + 10 + 20
    assert run.usage.cost_usd == pytest.approx(gpt + claude + sum(child_costs))
    assert run.usage.models == ("claude-sonnet-4-5", "gpt-4o", "gpt-4o-mini")


def test_unknown_model_records_tokens_with_no_cost(ledger: fl.Ledger,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    @fl.workflow(name="usage_unknown")
    def wf() -> str:
        return ask("house-model-7", 50, 5)

    with caplog.at_level(logging.WARNING, logger="flowledger"):
        run_id = ledger.start(wf).id
        ledger.handle(run_id).result(timeout=30)
    assert "no price known for model 'house-model-7'" in caplog.text
    run = ledger.get(run_id)
    [usage] = run.steps[0].usage
    assert (usage.input_tokens, usage.output_tokens, usage.cost_usd) == (50, 5, None)
    assert run.usage is not None and run.usage.unpriced_calls == 1
    assert run.usage.cost_usd is None


def test_usage_of_failed_attempts_is_kept(ledger: fl.Ledger) -> None:
    @fl.step(retries=1, backoff=0.001)
    def spend_then_fail() -> None:
        fl.record_usage("gpt-4o", input_tokens=10, output_tokens=1, provider="openai")
        raise ValueError("model output unusable")

    @fl.workflow(name="usage_failed")
    def wf() -> None:
        spend_then_fail()

    with pytest.raises(fl.RunFailed) as info:
        ledger.run(wf)
    assert len(ledger.get(info.value.run_id).steps[0].usage) == 2  # both attempts cost


def test_usage_groups(ledger: fl.Ledger) -> None:
    ledger.run(parent)
    by_model = {g.key: g.totals for g in ledger.usage(since=timedelta(hours=1), group_by="model")}
    assert by_model["gpt-4o-mini"].calls == 2 and by_model["gpt-4o-mini"].input_tokens == 300
    by_workflow = {g.key: g.totals for g in ledger.usage(group_by="workflow")}
    assert by_workflow["usage_parent"].calls == 2 and by_workflow["usage_child"].calls == 2
    assert ledger.usage(group_by="owner")[0].key == "default"
    assert ledger.usage(until=timedelta(hours=1)) == []
    with pytest.raises(fl.ConfigurationError, match="group_by"):
        ledger.usage(group_by="step")


def test_response_helpers_and_validation(ledger: fl.Ledger) -> None:
    openai_chat = SimpleNamespace(model="gpt-4o", usage=SimpleNamespace(
        prompt_tokens=120, completion_tokens=30,
        prompt_tokens_details=SimpleNamespace(cached_tokens=20),
        completion_tokens_details=SimpleNamespace(reasoning_tokens=5)))
    openai_responses = {"model": "gpt-4o", "usage": {"input_tokens": 7, "output_tokens": 3}}
    anthropic = SimpleNamespace(model="claude-sonnet-4-5", usage=SimpleNamespace(
        input_tokens=40, output_tokens=9, cache_read_input_tokens=60,
        cache_creation_input_tokens=0))

    @fl.step()
    def helpers() -> list[tuple[int, int, int, int]]:
        out = [fl.record_openai_usage(openai_chat), fl.record_openai_usage(openai_responses),
               fl.record_anthropic_usage(anthropic)]
        with pytest.raises(fl.ConfigurationError, match="non-negative"):
            fl.record_usage("gpt-4o", input_tokens=-1)
        with pytest.raises(fl.ConfigurationError, match="cannot exceed"):
            fl.record_usage("gpt-4o", input_tokens=10, cached_input_tokens=50)
        with pytest.raises(fl.ConfigurationError, match="cannot exceed"):
            fl.record_usage("gpt-4o", output_tokens=1, reasoning_tokens=5)
        with pytest.raises(fl.ConfigurationError, match="no usage"):
            fl.record_openai_usage({"model": "x"})
        return [(u.input_tokens, u.output_tokens, u.cached_input_tokens, u.reasoning_tokens)
                for u in out]

    @fl.workflow(name="usage_helpers")
    def wf() -> list[tuple[int, int, int, int]]:
        return helpers()

    assert ledger.run(wf) == [(120, 30, 20, 5), (7, 3, 0, 0), (100, 9, 60, 0)]
    with pytest.raises(fl.NotInRun):
        fl.record_usage("gpt-4o", input_tokens=1)
