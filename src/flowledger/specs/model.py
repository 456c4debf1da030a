"""The spec format as pydantic models: what a workflow file may contain.

Values that are strings may hold Jinja2 expressions (``{{ ... }}``), evaluated when the
step runs; the models check the shape, ``checks.py`` what the shape cannot say (ids,
the graph, what expressions refer to). ``spec_schema()`` is the JSON Schema editors use.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ConfigurationError
from ..validation import duration

FORMAT_VERSION = 1
STEP_KINDS = ("python", "shell", "http", "llm", "mcp", "workflow", "set")
ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"
# A duration: seconds as a number, or a number with a unit (30s, 5m, 2h).
Duration = float | str
INPUT_TYPES = ("string", "integer", "number", "boolean", "array", "object", "any")


def seconds(value: Duration | None, what: str = "duration") -> float | None:
    """A spec duration in seconds (None stays None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number of seconds or e.g. 30s, 5m, 2h")
    if isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = duration(value).total_seconds()
        except ConfigurationError:
            raise ValueError(f"{what} must be a number of seconds or e.g. 30s, 5m, 2h, "
                             f"not {value!r}") from None
    if number < 0:
        raise ValueError(f"{what} must not be negative")
    return number


class At(ValueError):
    """A model's problem with one of its fields (or items): messages point at that one."""

    def __init__(self, field: str | int, message: str) -> None:
        super().__init__(message)
        self.field = field


class Strict(BaseModel):
    # strict: no quiet conversions (``retries: true`` is not 1, ``name: !!binary`` no name)
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class InputSpec(Strict):
    """One workflow input: its type, an optional default (then it is optional)."""

    type: Literal["string", "integer", "number", "boolean", "array", "object", "any"] = "any"
    default: Any = None
    description: str | None = None
    enum: list[Any] | None = Field(default=None, min_length=1)

    @property
    def required(self) -> bool:
        return "default" not in self.model_fields_set

    @model_validator(mode="after")
    def _default_fits(self) -> InputSpec:
        value = self.default
        if value is None or "default" not in self.model_fields_set:
            return self  # null: optional, with no value
        if not _fits(self.type, value):
            raise ValueError(f"the default {value!r} is not of type {self.type}")
        if self.enum is not None and value not in self.enum:
            raise ValueError(f"the default {value!r} is not one of the enum's values")
        return self


def _fits(kind: str, value: Any) -> bool:
    """Whether a JSON value is of an input type."""
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    found = {"string": str, "boolean": bool, "array": list, "object": dict}.get(kind)
    return found is None or isinstance(value, found)


class Defaults(Strict):
    """Retry and timeout defaults for every step."""

    retries: int = Field(default=0, ge=0, le=100)
    timeout: Duration | None = None
    backoff: Duration = 0.5
    max_backoff: Duration = 60.0

    @field_validator("timeout", "backoff", "max_backoff")
    @classmethod
    def _duration(cls, value: Duration | None) -> Duration | None:
        seconds(value)
        return value


class McpServer(Strict):
    """An MCP server: a stdio command (argv list) or a streamable HTTP URL."""

    command: list[str] | None = Field(default=None, min_length=1)
    url: str | None = None
    env: dict[str, str] = {}
    cwd: str | None = None
    headers: dict[str, str] = {}

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if self.command is not None and self.url is not None:
            raise At("url", "give command (stdio) or url (streamable HTTP), not both")
        if self.command is None and self.url is None:
            raise ValueError("give command (stdio) or url (streamable HTTP)")
        return self


class HttpCall(Strict):
    method: str = "GET"
    url: str
    headers: dict[str, str] = {}
    params: dict[str, Any] = {}
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if value.upper() not in {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}:
            raise ValueError(f"unknown HTTP method {value!r}")
        return value.upper()

    @model_validator(mode="after")
    def _one_body(self) -> HttpCall:
        if self.json_body is not None and self.body is not None:
            raise At("body", "give json or body, not both")
        return self


class Message(Strict):
    role: Literal["system", "user", "assistant"]
    content: str


class LlmCall(Strict):
    provider: Literal["openai", "anthropic"] = "openai"
    model: str
    messages: list[Message] = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    temperature: float | str | None = None
    max_tokens: int | str | None = None
    params: dict[str, Any] = {}
    cache: bool = False


class McpCall(Strict):
    server: str
    tool: str
    arguments: dict[str, Any] = {}


class StepSpec(Strict):
    """One step: an id, exactly one kind, and how it runs."""

    id: str = Field(pattern=ID_PATTERN)
    needs: list[str] | None = None
    when: str | bool | None = Field(default=None, alias="if")
    for_each: str | list[Any] | None = None
    concurrency: int | None = Field(default=None, ge=1, le=256)
    retries: int | None = Field(default=None, ge=0, le=100)
    timeout: Duration | None = None
    backoff: Duration | None = None
    arguments: dict[str, Any] | None = Field(default=None, alias="with")
    description: str | None = None
    python: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
    shell: list[str] | None = Field(default=None, min_length=1)
    http: HttpCall | None = None
    llm: LlmCall | None = None
    mcp: McpCall | None = None
    workflow: str | None = None
    set: dict[str, Any] | None = Field(default=None, min_length=1)

    @field_validator("needs", mode="before")
    @classmethod
    def _needs_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("shell", mode="before")
    @classmethod
    def _shell_words(cls, value: Any) -> Any:
        """Numbers are arguments as written (``[sleep, 1]``); YAML's booleans (``yes``,
        ``no``, ``true``) are refused: their spelling is lost, so they must be quoted."""
        if not isinstance(value, list):
            return value
        for item in value:
            if isinstance(item, bool):
                raise ValueError(f"{str(item).lower()} is a boolean in YAML: quote the "
                                 "argument ('yes', 'true') to pass it as text")
        return [str(item) if isinstance(item, int | float) else item for item in value]

    @field_validator("timeout", "backoff")
    @classmethod
    def _duration(cls, value: Duration | None) -> Duration | None:
        seconds(value)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> StepSpec:
        given = [kind for kind in STEP_KINDS if getattr(self, kind) is not None]
        if not given:
            raise ValueError(f"a step needs one kind: {', '.join(STEP_KINDS)}")
        if len(given) > 1:
            raise ValueError(f"a step has one kind, this one has {' and '.join(given)}")
        if self.concurrency is not None and self.for_each is None:
            raise At("concurrency", "applies to for_each steps only")
        if self.arguments is not None and given[0] not in ("python", "workflow"):
            raise At("with", f"gives arguments to python and workflow steps, not to "
                             f"{given[0]} steps")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in STEP_KINDS if getattr(self, kind) is not None)


class SpecModel(Strict):
    """A whole workflow spec."""

    flowledger: Literal[1]
    name: str = Field(min_length=1, max_length=200)
    version: str | int | None = None
    description: str | None = None
    inputs: dict[str, InputSpec] = {}
    env: list[str] = []
    defaults: Defaults = Defaults()
    deadline: Duration | None = None
    mcp_servers: dict[str, McpServer] = {}
    steps: list[StepSpec] = Field(min_length=1)
    output: Any = None

    @field_validator("flowledger", mode="before")
    @classmethod
    def _format(cls, value: Any) -> Any:
        if type(value) is not int:  # 1.0 and true equal 1, but are not the format's number
            raise ValueError(f"must be {FORMAT_VERSION} (the format's version)")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, value: dict[str, InputSpec]) -> dict[str, InputSpec]:
        for name in value:
            if not re.match(ID_PATTERN, name):
                raise At(name, f"input name {name!r} must be an identifier "
                                 "(letters, digits, _; not starting with a digit)")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: list[str]) -> list[str]:
        for index, name in enumerate(value):
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
                raise At(index, f"{name!r} is not an environment variable name")
        return value

    @field_validator("deadline")
    @classmethod
    def _deadline(cls, value: Duration | None) -> Duration | None:
        if seconds(value) == 0:
            raise ValueError("must be positive")
        return value


def spec_schema() -> dict[str, Any]:
    """The JSON Schema of the spec format (``flowledger spec schema``), for editors."""
    schema = SpecModel.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://flowledger.dev/schema/spec-v1.json"
    schema["title"] = "flowledger workflow spec"
    for annotation in ("$schema", "$comment"):  # allowed at the top, ignored by the engine
        schema["properties"][annotation] = {"type": "string"}
    return schema
