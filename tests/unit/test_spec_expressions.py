"""The expression sandbox: whole expressions keep their types, undefined names are errors,
Python internals, files and the process environment are out of reach, and no expression
can hang the worker or exhaust its memory."""

from __future__ import annotations

import textwrap
import time
from typing import Any

import pytest

from flowledger.specs import SpecError, parse_spec
from flowledger.specs.expressions import MAX_SIZE, MAX_WORK, ExpressionError, evaluate

SCOPE = {
    "inputs": {"n": 21, "issue": 42, "tags": ["a", "b"], "repo": {"owner": "acme"}},
    "steps": {"fetch": {"output": {"json": {"title": "Crash", "files": ["x.py", "y.py"]},
                                   "status": 200}}},
    "context": {"label": "bug"},
    "run": {"id": "run-1"},
    "env": {"API_TOKEN": "s3cret"},  # built from the names the spec declares only
}


def refused(text: str, scope: dict[str, Any] | None = None) -> str:
    with pytest.raises(ExpressionError) as caught:
        evaluate(text, SCOPE if scope is None else scope)
    return str(caught.value)


# -- values ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("{{ inputs.n * 2 }}", 42),
    ("{{ inputs.tags }}", ["a", "b"]),
    ("{{ inputs.repo }}", {"owner": "acme"}),
    ("{{ steps.fetch.output.json.files }}", ["x.py", "y.py"]),
    ("{{ steps.fetch.output.status == 200 }}", True),
    ("{{ steps.fetch.output.json.files | length }}", 2),
    ("  {{ inputs.n }}\n", 21),
    ("{{ inputs.missing | default(3) }}", 3),
    ("{{ inputs.missing is defined }}", False),
    ("{{ inputs['n'] }}", 21),
    ("{{ none }}", None),
    ("{{ 2 ** 10 }}", 1024),
    ("{{ 'ab' * 3 }}", "ababab"),
])
def test_whole_expressions_keep_their_types(text: str, value: object) -> None:
    result = evaluate(text, SCOPE)
    assert result == value
    assert type(result) is type(value)


def test_whole_expressions_turn_iterators_into_lists() -> None:
    assert evaluate("{{ inputs.tags | map('upper') }}", SCOPE) == ["A", "B"]
    assert evaluate("{{ range(3) }}", SCOPE) == [0, 1, 2]


@pytest.mark.parametrize(("text", "value"), [
    ("issue {{ inputs.issue }}", "issue 42"),
    ("{{ inputs.n }}{{ inputs.n }}", "2121"),
    ("{{ inputs.tags }} and more", "['a', 'b'] and more"),
    ("{% for f in steps.fetch.output.json.files %}- {{ f }}\n{% endfor %}", "- x.py\n- y.py\n"),
    ("{{ context.label ~ '!' }}", "bug!"),
    ("plain text", "plain text"),
])
def test_mixed_text_renders_to_a_string(text: str, value: str) -> None:
    assert evaluate(text, SCOPE) == value


def test_values_are_evaluated_deeply() -> None:
    value = {"url": "http://x/{{ inputs.issue }}", "labels": ["{{ context.label }}", 3],
             "n": "{{ inputs.n }}"}
    assert evaluate(value, SCOPE) == {"url": "http://x/42", "labels": ["bug", 3], "n": 21}


# -- undefined is an error ---------------------------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("{{ inputs.missing }}", "the value has no attribute 'missing'"),
    ("{{ [inputs.missing] }}", "the value has no attribute 'missing'"),
    ("{{ {'a': {'b': inputs.missing}} }}", "the value has no attribute 'missing'"),
    ("x {{ inputs.missing }}", "the value has no attribute 'missing'"),
    ("{{ steps.nope.output }}", "the value has no attribute 'nope'"),
    ("{{ nope }}", "unknown name 'nope' (expressions see context, env, index, inputs, "
                   "item, run, steps)"),
    ("{{ item }}", "'item' is undefined"),
    ("{{ inputs.tags[5] }}", "list object has no element 5"),
])
def test_undefined_values_are_errors(text: str, message: str) -> None:
    error = refused(text)
    assert error.startswith(repr(text) + ": ")
    assert message in error


@pytest.mark.parametrize(("text", "message"), [
    ("{{ 1 / 0 }}", "ZeroDivisionError: division by zero"),
    ("{{ 'a' + 1 }}", "TypeError: can only concatenate str"),
    ("{{ inputs.n ", "unexpected end of template"),
])
def test_evaluation_errors_are_expression_errors(text: str, message: str) -> None:
    assert message in refused(text)


# -- Python internals, files, mutation ---------------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("{{ ''.__class__.__mro__ }}", "not allowed: access to attribute '__class__' of 'str'"),
    ("{{ inputs.__class__ }}", "not allowed: access to attribute '__class__' of 'dict'"),
    ("x{{ inputs.__class__ }}", "not allowed: access to attribute '__class__' of 'dict'"),
    ("{{ cycler.__init__.__globals__ }}", "not allowed: access to attribute '__init__'"),
    ("{{ cycler }}", "unknown name 'cycler'"),
    ("{{ joiner }}", "unknown name 'joiner'"),
    ("{{ lipsum }}", "unknown name 'lipsum'"),
    ("{{ self._TemplateReference__context }}", "not allowed: access to attribute "
                                               "'_TemplateReference__context'"),
    ("x{{ self._TemplateReference__context }}", "not allowed: access to attribute "
                                                "'_TemplateReference__context'"),
    ("{{ range.__self__ }}", "has no attribute '__self__'"),
    ("{{ '{0.__class__}'.format(1) }}", "not allowed: access to attribute '__class__'"),
    ("{{ inputs.tags | map(attribute='__class__') | list }}", "not allowed"),
    ("{{ inputs.tags | attr('__class__') }}", "not allowed"),
    ("{% include '/etc/passwd' %}", "not allowed: expressions cannot include or import "
                                    "templates (no files)"),
    ("{% import 'macros.j2' as m %}", "expressions cannot include or import templates"),
    ("{% extends 'base.j2' %}", "expressions cannot include or import templates"),
    ("{{ [].append(1) }}", "not allowed: access to attribute 'append' of 'list' object is "
                           "unsafe"),
    ("{{ {}.update(a=1) }}", "not allowed: access to attribute 'update' of 'dict' object "
                             "is unsafe"),
    ("{{ inputs.tags.append('c') }}", "access to attribute 'append' of 'list'"),
    ("{{ inputs.repo.clear() }}", "access to attribute 'clear' of 'dict'"),
])
def test_python_internals_and_files_are_out_of_reach(text: str, message: str) -> None:
    error = refused(text)
    assert message in error, error


def test_the_scope_is_not_mutated() -> None:
    scope = {"inputs": {"tags": ["a"], "repo": {"owner": "acme"}}}
    for text in ("{{ inputs.tags.append('b') }}", "{{ inputs.repo.update(owner='x') }}",
                 "{{ inputs.tags.pop() }}"):
        refused(text, scope)
    assert scope == {"inputs": {"tags": ["a"], "repo": {"owner": "acme"}}}


# -- the environment ---------------------------------------------------------------------

def test_only_declared_environment_variables_are_visible() -> None:
    # The interpreter builds env from the names under env: only.
    assert evaluate("{{ env.API_TOKEN }}", SCOPE) == "s3cret"
    assert evaluate("{{ env }}", SCOPE) == {"API_TOKEN": "s3cret"}
    assert "the value has no attribute 'HOME'" in refused("{{ env.HOME }}")
    assert "unknown name 'os'" in refused("{{ os.environ }}")


@pytest.mark.parametrize("expression", ["{{ env.HOME }}", "{{ env['HOME'] }}",
                                        "token={{ env.HOME }}"])
def test_an_undeclared_environment_variable_is_refused_at_validation(expression: str) -> None:
    text = textwrap.dedent(f"""\
        flowledger: 1
        name: t
        env: [API_TOKEN]
        steps:
          - id: a
            shell: [echo, "{expression}"]
        """)
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "flow.yaml")
    assert [str(problem) for problem in caught.value.problems] == [
        "flow.yaml:6:19 steps[0].shell[1]: environment variable 'HOME' is not declared "
        "under env: (only declared variables are visible)"]
    parse_spec(text.replace("HOME", "API_TOKEN"), "flow.yaml")


# -- bounded: nothing hangs or exhausts memory -------------------------------------------

BOUNDED = [
    ("{{ 2 ** 100000000 }}", "the exponent is too large (at most 1000)"),
    ("{{ 2 ** -100000000 }}", "the exponent is too large"),
    ("{{ (10 ** 1000) ** 1000 }}", "the result would have more than 100000 bits"),
    ("{{ 10 ** 1000 ** 1000 }}", "more than 100000 bits"),
    ("{% set x = 10 ** 900 %}{% set x = x * x %}{% set x = x * x %}{% set x = x * x %}"
     "{% set x = x * x %}{% set x = x * x %}{% set x = x * x %}{{ x > 0 }}",
     "more than 100000 bits"),
    ("{{ 'x' * 100000000 }}", "the result would have more than 1000000 items"),
    ("{{ 100000000 * 'x' }}", "more than 1000000 items"),
    ("{{ [1] * 100000000 }}", "more than 1000000 items"),
    ("{{ 'x' * 999999 * 999999 }}", "more than 1000000 items"),
    ("{{ (['x' * 999999] * 999999) | join }}", f"longer than {MAX_SIZE} characters"),
    ("{{ ''.join(['x' * 999999] * 999999) }}", f"longer than {MAX_SIZE} characters"),
    ("{{ 'x'.ljust(100000000) }}", f"longer than {MAX_SIZE} characters"),
    ("{{ 'x'.center(100000000) }}", f"longer than {MAX_SIZE} characters"),
    ("{{ 'x'.zfill(100000000) }}", f"longer than {MAX_SIZE} characters"),
    ("{{ 'x\ty'.expandtabs(100000000) }}", f"longer than {MAX_SIZE} characters"),
    ("{{ 'x' | center(100000000) }}", f"longer than {MAX_SIZE} characters"),
    ("{{ 'x\ny' | indent(100000000) }}", f"longer than {MAX_SIZE} characters"),
    ("{{ '%0100000000d' % 1 }}", f"longer than {MAX_SIZE} characters"),
    ("{{ '%*d' | format(100000000, 1) }}", f"longer than {MAX_SIZE} characters"),
    ("{{ '{:>100000000}'.format('x') }}", f"longer than {MAX_SIZE} characters"),
    ("{{ '{:>{}}'.format('x', 100000000) }}", f"longer than {MAX_SIZE} characters"),
    ("{{ 'ab' | replace('a', 'x' * 999999) | replace('x', 'y' * 999999) }}",
     f"longer than {MAX_SIZE} characters"),
    ("{{ ('x' * 999999).replace('x', 'yyyyyyyyyyyyyyyyyyyy') }}",
     f"longer than {MAX_SIZE} characters"),
    ("{{ [1] | batch(100000000, 0) | list }}", f"longer than {MAX_SIZE} characters"),
    ("{{ [1] | slice(100000000) | list }}", f"longer than {MAX_SIZE} characters"),
    ("{{ inputs.tags | tojson(100000000) }}", f"longer than {MAX_SIZE} characters"),
    ("{% set ns = namespace(s='x') %}{% for i in range(60) %}"
     "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
     f"longer than {MAX_SIZE} characters"),
    ("{% set ns = namespace(s='x') %}{% for i in range(60) %}"
     "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}",
     f"longer than {MAX_SIZE} characters"),
    ("{% set ns = namespace(s='x') %}{% for i in range(60) %}"
     "{% set ns.s = '%s%s' % (ns.s, ns.s) %}{% endfor %}{{ ns.s | length }}",
     f"longer than {MAX_SIZE} characters"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
     f"too much work (more than {MAX_WORK} loop iterations and calls)"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
     "too much work"),
    ("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
     "{{ f(60) }}", "too much work"),
    ("{% for x in range(300) recursive %}{% if loop.depth < 3 %}{{ loop(range(300)) }}"
     "{% endif %}{% endfor %}", "too much work"),
    ("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", "RecursionError"),
    ("{{ range(100000000) | list }}", "Range too big"),
]


@pytest.mark.parametrize(("text", "message"), BOUNDED)
def test_expressions_are_bounded(text: str, message: str) -> None:
    started = time.monotonic()
    error = refused(text)
    assert message in error, error
    assert time.monotonic() - started < 10


def test_bounds_leave_room_for_ordinary_work() -> None:
    assert len(evaluate("{{ 'x' * 999999 }}", SCOPE)) == 999999
    assert len(evaluate("{{ ('x' * 999999) ~ ('y' * 999999) }}", SCOPE)) == 1999998
    assert evaluate("{{ 2 ** 1000 }}", SCOPE) == 2 ** 1000
    assert evaluate("{{ '%05d' % 42 }}", SCOPE) == "00042"
    assert evaluate("{{ '{:>6}'.format('ab') }}", SCOPE) == "    ab"
    assert evaluate("{{ '%d items' | format(123456789) }}", SCOPE) == "123456789 items"
    assert evaluate("{{ 'a-b' | replace('-', ' and ') }}", SCOPE) == "a and b"
    tree = {"tree": [{"n": 1, "c": [{"n": 2, "c": []}, {"n": 3, "c": []}]}]}
    assert evaluate("{% for x in tree recursive %}{{ x.n }}{% if x.c %}({{ loop(x.c) }})"
                    "{% endif %}{% endfor %}", tree) == "1(23)"
    rows = evaluate("{% for i in range(100000) %}{{ i % 10 }}{% endfor %}", SCOPE)
    assert len(rows) == 100000
    # Each evaluation has its own budget.
    for _ in range(3):
        evaluate("{% for i in range(100000) %}{% for j in range(5) %}{% endfor %}{% endfor %}",
                 SCOPE)
