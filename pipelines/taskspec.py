"""The task spec: the one definition of a task's fields, from which everything else derives.

Each field of ``TaskSpec`` carries, in its metadata, how it is parsed and checked from a registered config (with
the path of a fault), how it is stored (its model field: ``pipelines.models.Task`` is built from these), how it
appears in a run's snapshot (``TaskExecution.task``) and in the API, and how the admin shows it. Adding a task
field is adding one entry here (and the migration ``makemigrations`` then writes).

Where values go:
- registration: ``TaskSpec.parse(raw, path, errors)`` validates a task of Gofer's SDK JSON and reports every fault;
- storage: ``TaskSpec.row_values()`` / ``TaskSpec.from_row(task)``; the registry password lives only in the
  encrypted column;
- a run: ``TaskSpec.snapshot()`` is what a task execution keeps (no password), read back by ``from_snapshot``;
- the API: ``TaskSpec.api()``, the password replaced by ``[redacted]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import models

from kernel import outbound
from kernel.errors import FieldError
from kernel.fields import EncryptedJSONField
from kernel.identifiers import TASK_ID_RE, VARIABLE_NAME_RE
from pipelines.choices import RequiredParentStatus

DEFAULT_TASK_TIMEOUT = 8 * 3600
MIN_TASK_TIMEOUT = 5 * 60
MAX_TASK_TIMEOUT = 8 * 3600
MAX_VARIABLES = 500
MAX_VARIABLE_VALUE = 64 * 1024
MAX_ARGV = 1000
MAX_CPU = Decimal(256)
MIN_MEMORY_MIB = 4
MAX_MEMORY_MIB = 4 * 1024 * 1024
MAX_IMAGE_LENGTH = 512
REDACTED = "[redacted]"


class Collector:
    """Faults found while parsing, each with the path of the value at fault (``config.tasks[2].timeout``)."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))


# --- parsers: (raw value, path, collector) -> the value; each records its own faults ---------------------------------

Parser = Callable[[Any, str, Collector], Any]


def _task_id(value: Any, path: str, errors: Collector) -> str:
    if not isinstance(value, str) or not TASK_ID_RE.fullmatch(value):
        errors.add(path, "required: 1 to 64 letters, digits, '-' or '_', starting with a letter or digit")
        return ""
    return value


def _image(value: Any, path: str, errors: Collector) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_IMAGE_LENGTH or any(c.isspace() for c in value):
        errors.add(
            path, f"required: a container image reference without spaces (at most {MAX_IMAGE_LENGTH} characters)"
        )
        return ""
    try:
        registry_policy().check_literal(*outbound.registry_of(value))
    except outbound.Refused as exc:
        errors.add(path, f"the image's registry: {exc}")
    return value


def registry_policy() -> outbound.Policy:
    """The registries tasks may pull from (GOFER_ALLOWED_REGISTRIES, GOFER_ALLOW_PUBLIC_REGISTRIES). In sandbox mode
    only the listed ones, whatever GOFER_ALLOW_PUBLIC_REGISTRIES says (docs/sandbox.md)."""
    return outbound.policy(
        settings.GOFER_ALLOWED_REGISTRIES,
        allow_public=settings.GOFER_ALLOW_PUBLIC_REGISTRIES and not settings.GOFER_SANDBOX,
        setting="GOFER_ALLOWED_REGISTRIES",
    )


def _text(max_length: int) -> Parser:
    def parse(value: Any, path: str, errors: Collector) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            errors.add(path, "must be a string")
            return ""
        if len(value) > max_length:
            errors.add(path, f"must be at most {max_length} characters")
        return value

    return parse


def _bool(default: bool) -> Parser:
    def parse(value: Any, path: str, errors: Collector) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            errors.add(path, "must be true or false")
            return default
        return value

    return parse


def _argv(value: Any, path: str, errors: Collector) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        errors.add(path, "must be a list of strings")
        return None
    if len(value) > MAX_ARGV:
        errors.add(path, f"must have at most {MAX_ARGV} items")
    return list(value) or None


def _registry_auth(value: Any, path: str, errors: Collector) -> dict[str, str] | None:
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("user"), str)
        or not value.get("user")
        or not isinstance(value.get("pass"), str)
        or set(value) - {"user", "pass"}
    ):
        errors.add(path, "must be {user, pass} with a non-empty user")
        return None
    return {"user": value["user"], "pass": value["pass"]}


def _depends_on(value: Any, path: str, errors: Collector) -> dict[str, str]:
    out: dict[str, str] = {}
    if value is None or value == {}:
        return out
    if not isinstance(value, dict):
        errors.add(path, "must be an object of task id: Any | Success | Failure")
        return out
    for parent, requirement in value.items():
        normalised = requirement.lower() if isinstance(requirement, str) else None
        if normalised not in RequiredParentStatus.values:
            errors.add(f"{path}.{parent!s:.64}", "must be Any, Success or Failure")
            continue
        out[str(parent)] = normalised
    return out


def parse_variables(value: Any, path: str, errors: Collector) -> list[dict[str, str]]:
    """Variables as ``{K: V}`` (Gofer's SDK form) or ``[{"key", "value"}]``; keys upper-cased, order kept."""
    out: list[dict[str, str]] = []
    if value is None:
        return out
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = []
        for index, item in enumerate(value):
            if not isinstance(item, dict) or "key" not in item or "value" not in item:
                errors.add(f"{path}[{index}]", "must be an object with key and value")
                continue
            items.append((item["key"], item["value"]))
    else:
        errors.add(path, "must be an object of NAME: value")
        items = []
    if len(items) > MAX_VARIABLES:
        errors.add(path, f"at most {MAX_VARIABLES} variables")
    seen: dict[str, str] = {}
    for key, val in items:
        where = f"{path}.{key!s:.64}"
        if not isinstance(key, str) or not VARIABLE_NAME_RE.fullmatch(key):
            errors.add(where, "variable names are letters, digits and '_', not starting with a digit")
            continue
        if not isinstance(val, str):
            errors.add(where, "value must be a string")
            continue
        if len(val) > MAX_VARIABLE_VALUE:
            errors.add(where, f"value must be at most {MAX_VARIABLE_VALUE} bytes")
            continue
        upper = key.upper()
        if upper in seen:
            errors.add(where, f"duplicates {seen[upper]!r} (names are upper-cased)")
            continue
        seen[upper] = key
        out.append({"key": upper, "value": val})
    return out


def _timeout(value: Any, path: str, errors: Collector) -> int:
    if value is None:
        return DEFAULT_TASK_TIMEOUT
    if not isinstance(value, int) or isinstance(value, bool) or not MIN_TASK_TIMEOUT <= value <= MAX_TASK_TIMEOUT:
        errors.add(path, f"must be seconds between {MIN_TASK_TIMEOUT} (5 min) and {MAX_TASK_TIMEOUT} (8 h)")
        return DEFAULT_TASK_TIMEOUT
    return value


def _cpu(value: Any, path: str, errors: Collector) -> Decimal | None:
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise InvalidOperation
        cpu = Decimal(str(value)).quantize(Decimal("0.001"))
        if not Decimal("0.001") <= cpu <= MAX_CPU:
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        errors.add(path, f"must be a number of CPU cores between 0.001 and {MAX_CPU}")
        return None
    return cpu


def _memory(value: Any, path: str, errors: Collector) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not MIN_MEMORY_MIB <= value <= MAX_MEMORY_MIB:
        errors.add(path, f"must be MiB between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB}")
        return None
    return value


# --- the field table ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecField:
    """How one task field is parsed, stored, snapshotted and shown."""

    parse: Parser
    # The model field that stores it (a factory: each model needs its own instance).
    model_field: Callable[[], models.Field]
    # The model attribute, when it differs from the spec's name (the task id is stored as ``slug``).
    column: str | None = None
    # JSON form in snapshots and the API (Decimal CPU becomes a float).
    to_json: Callable[[Any], Any] = lambda value: value
    from_json: Callable[[Any], Any] = lambda value: value
    # Shown in the admin's task list.
    listed: bool = False
    help: str = ""


def spec(default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A TaskSpec field with its SpecField metadata. A list or dict default is copied for each spec."""
    meta = {"spec": SpecField(**kwargs)}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _float_or_none(value: Any) -> float | None:
    return float(value) if value is not None else None


def _decimal_or_none(value: Any) -> Decimal | None:
    return Decimal(str(value)).quantize(Decimal("0.001")) if value is not None else None


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """A task as registered: a container image and how to run it. Field order is the API's and the admin's."""

    id: str = spec(
        "",
        parse=_task_id,
        model_field=lambda: models.CharField("task id", max_length=64),
        column="slug",
        listed=True,
        help="Unique in the pipeline; other tasks name it in depends_on.",
    )
    description: str = spec("", parse=_text(2000), model_field=lambda: models.TextField(blank=True, default=""))
    image: str = spec(
        "",
        parse=_image,
        model_field=lambda: models.CharField(max_length=MAX_IMAGE_LENGTH),
        listed=True,
        help="The container image, e.g. busybox:latest or registry.example.com/team/app@sha256:...",
    )
    # {"user", "pass"}; encrypted at rest like every stored credential, never shown, never in a snapshot.
    registry_auth: dict[str, str] | None = spec(
        None, parse=_registry_auth, model_field=lambda: EncryptedJSONField(null=True, blank=True)
    )
    # {parent task id: "any" | "success" | "failure"}
    depends_on: dict[str, str] = spec(
        {}, parse=_depends_on, model_field=lambda: models.JSONField(default=dict, blank=True), listed=True
    )
    # [{"key", "value"}] in registration order; keys upper-cased.
    variables: list[dict[str, str]] = spec(
        [], parse=parse_variables, model_field=lambda: models.JSONField(default=list, blank=True)
    )
    entrypoint: list[str] | None = spec(None, parse=_argv, model_field=lambda: models.JSONField(null=True, blank=True))
    command: list[str] | None = spec(
        None, parse=_argv, model_field=lambda: models.JSONField(null=True, blank=True), listed=True
    )
    inject_api_token: bool = spec(
        False, parse=_bool(False), model_field=lambda: models.BooleanField(default=False), listed=True
    )
    always_pull_newest_image: bool = spec(
        False, parse=_bool(False), model_field=lambda: models.BooleanField(default=False)
    )
    timeout: int = spec(
        DEFAULT_TASK_TIMEOUT,
        parse=_timeout,
        model_field=lambda: models.PositiveIntegerField(
            default=DEFAULT_TASK_TIMEOUT, help_text="Seconds (300 to 28800)."
        ),
        listed=True,
    )
    cpu: Decimal | None = spec(
        None,
        parse=_cpu,
        model_field=lambda: models.DecimalField(
            max_digits=6, decimal_places=3, null=True, blank=True, help_text="CPU cores."
        ),
        to_json=_float_or_none,
        from_json=_decimal_or_none,
    )
    memory: int | None = spec(
        None,
        parse=_memory,
        model_field=lambda: models.PositiveIntegerField(null=True, blank=True, help_text="Memory in MiB."),
    )
    logging: bool = spec(True, parse=_bool(True), model_field=lambda: models.BooleanField(default=True))

    # --- the table -------------------------------------------------------------------------------------------

    @staticmethod
    def fields() -> tuple[tuple[str, SpecField], ...]:
        """(name, SpecField) of every field, in order."""
        return tuple((f.name, f.metadata["spec"]) for f in dataclasses.fields(TaskSpec))

    @staticmethod
    def names() -> frozenset[str]:
        return frozenset(name for name, _ in TaskSpec.fields())

    @staticmethod
    def column(name: str) -> str:
        """The model attribute that stores field ``name``."""
        return dict(TaskSpec.fields())[name].column or name

    # --- registration ------------------------------------------------------------------------------------------

    @classmethod
    def parse(cls, raw: Any, path: str, errors: Collector) -> TaskSpec | None:
        """A task from a registered config; every fault is added to ``errors`` with its path. None if ``raw`` is
        not even an object."""
        if not isinstance(raw, dict):
            errors.add(path, "must be an object")
            return None
        for unknown in sorted(set(raw) - cls.names()):
            errors.add(f"{path}.{unknown:.40}", "unknown field")
        values = {name: field.parse(raw.get(name), f"{path}.{name}", errors) for name, field in cls.fields()}
        return cls(**values)

    # --- storage -----------------------------------------------------------------------------------------------

    def row_values(self) -> dict[str, Any]:
        """Keyword arguments for ``pipelines.models.Task`` (besides its config and position)."""
        return {field.column or name: getattr(self, name) for name, field in self.fields()}

    @classmethod
    def from_row(cls, task: Any) -> TaskSpec:
        return cls(**{name: getattr(task, field.column or name) for name, field in cls.fields()})

    # --- a run's snapshot ----------------------------------------------------------------------------------------

    def snapshot(self, *, config_logging: bool = True) -> dict[str, Any]:
        """The task as a run keeps it (``TaskExecution.task``). The registry password is not copied: the worker
        reads it from the encrypted task row when it starts the container. Variables carry their source."""
        out = {name: field.to_json(getattr(self, name)) for name, field in self.fields()}
        out["registry_auth"] = {"user": self.registry_auth["user"]} if self.registry_auth else None
        out["variables"] = [{**v, "source": "pipeline_config"} for v in self.variables]
        out["logging"] = bool(config_logging and self.logging)
        return out

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> TaskSpec:
        """A snapshot read back; fields a snapshot lacks (written before they existed) take their defaults."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                values[f.name] = f.metadata["spec"].from_json(data[f.name])
        values["variables"] = [{"key": v["key"], "value": v.get("value", "")} for v in data.get("variables") or []]
        return cls(**values)

    # --- the API -------------------------------------------------------------------------------------------------

    def api(self) -> dict[str, Any]:
        """Gofer v0's Task shape: the registered values, the registry password redacted."""
        out = {name: field.to_json(getattr(self, name)) for name, field in self.fields()}
        out["registry_auth"] = {"user": self.registry_auth["user"], "pass": REDACTED} if self.registry_auth else None
        out["variables"] = [{**v, "source": "pipeline_config"} for v in self.variables]
        return out


def task_model_fields() -> dict[str, models.Field]:
    """Fresh model fields for every spec field, keyed by model attribute (``pipelines.models.Task`` uses them)."""
    return {field.column or name: field.model_field() for name, field in TaskSpec.fields()}
