"""What every command shares: the global options, the per-invocation state, list flags, and error hints."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import click

from gofer_cli import config
from gofer_cli.client import Client, Mutation, Page
from gofer_cli.errors import ApiError, CliError, NetworkError, UsageError
from gofer_cli.output import Output

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    """One invocation: the flags given, and (computed on first use) the settings, the output and the API client."""

    flags: dict[str, str | None] = field(default_factory=dict)

    @cached_property
    def settings(self) -> config.Settings:
        return config.load(self.flags)

    @cached_property
    def out(self) -> Output:
        # The output format is needed to report a broken config file too: fall back to the flag or human.
        try:
            fmt = self.settings.output_format.value or "human"
        except CliError:
            fmt = self.flags.get("output_format") or "human"
        return Output(fmt if fmt in config.OUTPUT_FORMATS else "human")

    @cached_property
    def client(self) -> Client:
        return Client(self.settings.api_base_url.value or config.DEFAULT_API_BASE_URL, self.settings.token.value)

    @property
    def namespace(self) -> str:
        return self.settings.namespace.value or config.DEFAULT_NAMESPACE


def state() -> State:
    """The invocation's State (kept on the root context)."""
    ctx = click.get_current_context()
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def _store(key: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None:
            root = ctx.find_root()
            if not isinstance(root.obj, State):
                root.obj = State()
            root.obj.flags[key] = value

    return callback


def global_options(f: F) -> F:
    """``--namespace``, ``--output``, ``--api-base-url``, ``--token``: accepted on the root and on every command."""
    options = [
        click.option(
            "--namespace",
            "namespace",
            metavar="ID",
            default=None,
            expose_value=False,
            callback=_store("namespace"),
            help="Namespace to work in (default: GOFER_NAMESPACE, the config file, or 'default').",
        ),
        click.option(
            "-o",
            "--output",
            "output_format",
            type=click.Choice(config.OUTPUT_FORMATS),
            default=None,
            expose_value=False,
            callback=_store("output_format"),
            help="human (tables, colours), plain (tab-separated raw values) or json (raw API fields).",
        ),
        click.option(
            "--api-base-url",
            metavar="URL",
            default=None,
            expose_value=False,
            callback=_store("api_base_url"),
            help="Gofer server URL (default: GOFER_API_BASE_URL, the config file, or http://127.0.0.1:8080).",
        ),
        click.option(
            "--token",
            metavar="TOKEN",
            default=None,
            expose_value=False,
            callback=_store("token"),
            help="API token (default: GOFER_TOKEN or the config file).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def list_options(f: F) -> F:
    """``--limit``, ``--offset``, ``--reverse``, ``--all``, passed to the command as ``page: Page``."""

    @functools.wraps(f)
    def wrapper(*args: Any, limit: int | None, offset: int, reverse: bool, everything: bool, **kwargs: Any) -> Any:
        if everything and limit is not None:
            raise click.UsageError("--all and --limit cannot be used together")
        return f(*args, page=Page(limit=limit, offset=offset, reverse=reverse, everything=everything), **kwargs)

    options = [
        click.option(
            "-l",
            "--limit",
            type=click.IntRange(1, 500),
            default=None,
            help="At most this many (the API's default: 50; at most 500).",
        ),
        click.option("--offset", type=click.IntRange(0), default=0, help="Skip this many first."),
        click.option("-r", "--reverse", is_flag=True, help="Newest (or last) first."),
        click.option("-a", "--all", "everything", is_flag=True, help="Every item, fetched page by page."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


def parse_pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    """``KEY=VALUE`` options as a dict; a value may itself contain ``=``."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def report_mutation(result: Mutation, done: str, noop: str | None = None) -> None:
    """A write's outcome: ``done`` when it changed something; otherwise the server's "nothing changed" message, or
    ``noop`` when the server gave none (a 204 whose header says nothing changed).

    JSON: ``{"changed": bool, "message": str|null}`` (the server's message, raw) plus the fields of the response
    body, if it had one.
    """
    out = state().out
    body = {k: v for k, v in result.body.items() if k not in ("changed", "message")}
    out.document(
        {**body, "changed": result.changed, "message": result.message},
        human=lambda: out.done(done if result.changed else (result.message or noop or "Nothing changed.")),
    )


# --- hints ------------------------------------------------------------------------------------------------------

LIST_COMMANDS = {
    "namespace": "gofer namespace list",
    "pipeline": "gofer pipeline list",
    "run": "gofer run list PIPELINE_ID",
    "task": "gofer task list PIPELINE_ID RUN_ID",
    "token": "gofer token list",
    "role": "gofer role list",
    "event": "gofer event list --reverse",
    "secret": "gofer pipeline secret list PIPELINE_ID",
    "object": "gofer pipeline object list PIPELINE_ID",
    "config": "gofer pipeline config list PIPELINE_ID",
    "deployment": "gofer pipeline deployment list PIPELINE_ID",
    "extension": "gofer extension list",
}


def hint_for(error: CliError, ctx: click.Context | None, st: State) -> str | None:
    """What to do about ``error`` in the command ``ctx``: how to set a token (401), which parent is missing (404),
    the ``--force`` flag (409), which URL to check (network)."""
    try:
        settings = st.settings
    except CliError:
        return None
    if isinstance(error, NetworkError):
        url = settings.api_base_url
        return (
            f"the API URL is {url.value} (from {url.source}); set it with --api-base-url, GOFER_API_BASE_URL or "
            "api_base_url in ~/.config/gofer/config.toml"
        )
    if not isinstance(error, ApiError):
        return None
    params = {p.name for p in ctx.command.params} if ctx is not None else set()
    if error.status == 401:
        token = settings.token
        where = f"the token in use comes from {token.source}" if token.value else "no token is set"
        return (
            f'{where}. Set one with --token, GOFER_TOKEN=<secret> or token = "<secret>" in ~/.config/gofer/config.toml'
            " (the first token of a new server: gofer token bootstrap)"
        )
    if error.status == 403:
        return "ask an admin for a role that grants it; gofer token whoami shows your token's roles"
    if error.status == 404:
        fields = [e.get("field") for e in error.errors]
        missing = error.api_message.split(" ", 1)[0]
        if "namespace_id" in fields or missing == "namespace":
            ns = settings.namespace
            return (
                f"namespace {ns.value!r} (from {ns.source}) does not exist or is not visible to this token; "
                "gofer namespace list shows yours; choose with --namespace or gofer namespace set ID"
            )
        if missing in LIST_COMMANDS:
            return f"{missing} not found in namespace {settings.namespace.value!r}; see {LIST_COMMANDS[missing]}"
        return None
    if error.status == 409:
        if "force" in params:
            return "add --force to replace what exists"
        if "no version is live" in error.api_message or "live" in error.api_message:
            return "deploy a version first: gofer pipeline config deploy PIPELINE_ID VERSION (or gofer up --deploy)"
        return None
    if error.status == 503:
        return (
            "new runs are refused: the pipeline is disabled (gofer pipeline enable PIPELINE_ID) or an admin turned "
            "on the kill switch (gofer system update --no-ignore-pipeline-run-events)"
        )
    if error.status == 400 and error.errors:
        return None
    return None


GLOBAL_OPTIONS = ("namespace", "output_format", "api_base_url", "token")


class GoferCommand(click.Command):
    """A command that attaches a hint to the CLI errors it raises (it knows its own flags and the settings), and
    lists the global options in a section of their own in its help."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        own, shared = [], []
        for param in self.get_params(ctx):
            if not isinstance(param, click.Option):
                continue  # arguments are in the usage line
            record = param.get_help_record(ctx)
            if record is not None:
                (shared if param.name in GLOBAL_OPTIONS else own).append(record)
        if own:
            with formatter.section("Options"):
                formatter.write_dl(own)
        if shared:
            with formatter.section("Global options"):
                formatter.write_dl(shared)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as error:
            if error.hint is None:
                error.hint = hint_for(error, ctx, state())
            raise


class GoferGroup(click.Group):
    """A group whose commands and sub-groups are Gofer's (hints, global options)."""

    command_class = GoferCommand


GoferGroup.group_class = GoferGroup


def gofer_command(group: click.Group | None, name: str | None = None, **kwargs: Any) -> Callable[[F], click.Command]:
    """``@gofer_command(group)``: a command of ``group`` (or a free one, for None) with the global options."""

    def decorator(f: F) -> click.Command:
        if group is None:
            return click.command(name, cls=GoferCommand, **kwargs)(global_options(f))
        return group.command(name, cls=GoferCommand, **kwargs)(global_options(f))

    return decorator
