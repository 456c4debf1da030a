"""The redaction rules themselves (no store): keys at any depth, regex keys, value
patterns (bearer tokens, Luhn-checked card numbers, AWS key ids), free text."""

from __future__ import annotations

import json
import re

import pytest

import flowledger as fl
from flowledger.redact import Redactor, luhn_valid, marked_paths, redactor_of


def test_keys_at_any_depth_any_case_and_regex_fullmatch() -> None:
    redactor = Redactor(["Password", re.compile(r"secret_.*")])
    value = {"user": "ana", "PASSWORD": "p1", "list": [{"password": "p2"}, [{"x": 1}]],
             "secret_token": "s1", "my_secret_token": "kept", "nested": {"secret_": "s2"}}
    text, paths = redactor.json_text(json.dumps(value))
    assert json.loads(text) == {
        "user": "ana", "PASSWORD": "[redacted]", "list": [{"password": "[redacted]"},
                                                          [{"x": 1}]],
        "secret_token": "[redacted]", "my_secret_token": "kept",
        "nested": {"secret_": "[redacted]"}}
    assert paths == ["PASSWORD", "list[0].password", "secret_token", "nested.secret_"]


def test_unchanged_text_is_returned_as_is() -> None:
    redactor = Redactor(["password"])
    text = '{"a": 1.0, "b": [1, 2]}'
    assert redactor.json_text(text) == (text, [])
    # The name as a value (not a key) is parsed but changes nothing.
    assert redactor.json_text('"password"') == ('"password"', [])


def test_luhn() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("5500000000000004")
    assert not luhn_valid("1234567890123456") and not luhn_valid("4111111111111112")


@pytest.mark.parametrize(("given", "expected"), [
    ("Authorization: Bearer abc.DEF-123_xyz=", "Authorization: Bearer [redacted]"),
    ("bearer abcdefgh12345678 rest", "bearer [redacted] rest"),
    ("a Bearer of bad news", "a Bearer of bad news"),  # too short to be a token
    ("card 4111 1111 1111 1111 ok", "card [redacted] ok"),
    ("card 4111-1111-1111-1111", "card [redacted]"),
    ("card 4111111111111111", "card [redacted]"),
    ("order 1234 5678 9012 3456", "order 1234 5678 9012 3456"),  # fails Luhn: kept
    ("id 41111111111111112222", "id 41111111111111112222"),  # 20 digits: not a card
    ("key AKIAIOSFODNN7EXAMPLE used", "key [redacted] used"),
])
def test_value_patterns(given: str, expected: str) -> None:
    redactor = Redactor([], [fl.redact.BEARER_TOKEN, fl.redact.CARD_NUMBER,
                             fl.redact.AWS_ACCESS_KEY_ID])
    assert redactor.free_text(given) == expected
    text, paths = redactor.json_text(json.dumps({"note": [given]}))
    assert json.loads(text) == {"note": [expected]}
    assert paths == ([] if given == expected else ["note[0]"])


def test_a_compiled_regex_is_a_value_pattern() -> None:
    redactor = redactor_of(fl.Redact(values=[re.compile(r"TCK-\d{4}")]))
    assert redactor is not None
    assert redactor.free_text("see TCK-1234 and TCK-12") == "see [redacted] and TCK-12"


@pytest.mark.parametrize(("given", "expected"), [
    ("login refused: password='hunter2'", "login refused: password='[redacted]'"),
    ('{"password": "hunter2", "user": "ana"}', '{"password": "[redacted]", "user": "ana"}'),
    ("{'API_KEY': 'k1', 'n': 2}", "{'API_KEY': '[redacted]', 'n': 2}"),
    ("connect(password=hunter2, host=db)", "connect(password=[redacted], host=db)"),
    ("?user=ana&password=hunter2&x=1", "?user=ana&password=[redacted]&x=1"),
    ("KeyError: 'api_key=k2'", "KeyError: 'api_key=[redacted]'"),
    ("if password == expected:", "if password == expected:"),
    ("passwords: many", "passwords: many"),
])
def test_free_text_pairs(given: str, expected: str) -> None:
    assert Redactor(["password", "api_key"]).free_text(given) == expected


def test_errors_and_log_records_keep_their_shape() -> None:
    redactor = Redactor(["password"], [fl.redact.BEARER_TOKEN])
    error = json.dumps({"type": "builtins.ValueError", "message": "password=x1",
                        "traceback": "Traceback\nValueError: Bearer abcdefgh12345678\n"})
    assert json.loads(redactor.error_json(error)) == {
        "type": "builtins.ValueError", "message": "password=[redacted]",
        "traceback": "Traceback\nValueError: Bearer [redacted]\n"}
    records = json.dumps([{"at": 1, "level": "INFO", "logger": "x", "message": "password=x",
                           "exception": None}])
    assert json.loads(redactor.log_records(records))[0]["message"] == "password=[redacted]"


def test_options_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWLEDGER_REDACT", raising=False)
    assert redactor_of(None) is None and redactor_of([]) is None
    assert redactor_of(fl.Redact()) is None
    monkeypatch.setenv("FLOWLEDGER_REDACT", "token, ,Cookie")
    from_env = redactor_of(None)
    assert from_env is not None and from_env.names == {"token", "cookie"}
    both = redactor_of(["password"])
    assert both is not None and both.names == {"password", "token", "cookie"}
    with pytest.raises(TypeError, match="str or a compiled regex"):
        redactor_of([42])  # type: ignore[list-item]


def test_marked_paths() -> None:
    assert marked_paths(None) == [] and marked_paths('{"a": 1}') == []
    assert marked_paths('{"login": {"password": "[redacted]"}, "h": ["Bearer [redacted]"]}') \
        == ["login.password", "h[0]"]


def test_values_only_seen_once_parsed_are_still_found() -> None:
    # An anchored pattern matches a whole string, never the JSON text around it; an
    # escape (\n) separates "Bearer" from its token only in the JSON text.
    anchored = redactor_of(fl.Redact(values=[re.compile(r"^sk-\w+$")]))
    assert anchored is not None
    assert anchored.json_text(json.dumps({"k": "sk-abc123"}))[0] == '{"k":"[redacted]"}'
    bearer = redactor_of(fl.Redact(values=[fl.redact.BEARER_TOKEN]))
    assert bearer is not None
    text, paths = bearer.json_text(json.dumps(["Bearer\nabcdefgh12345678"]))
    assert json.loads(text) == ["Bearer\n[redacted]"] and paths == ["[0]"]
