"""``gofer extension ...`` and ``gofer event ...``.

Extension routes follow the OpenAPI reference of Gofer v0 (``/api/extensions...``); see docs/cli.md for which
server routes exist today.
"""

from __future__ import annotations

import asyncio

import click
from rich.text import Text

from gofer_cli import humanize, streams, views
from gofer_cli.client import Page, path
from gofer_cli.commands.base import GoferGroup, gofer_command, list_options, parse_pairs, report_mutation, state
from gofer_cli.errors import UsageError


@click.group(cls=GoferGroup)
def extension() -> None:
    """Extensions: long-running containers pipelines subscribe to (triggers, notifiers).

    \b
    Example:
      gofer extension list
    """


@gofer_command(extension, "list")
@list_options
def list_(page: Page) -> None:
    """List installed extensions.

    \b
    Example:
      gofer extension list
    """
    st = state()
    items = st.client.list("/extensions", "extensions", page)
    st.out.document({"extensions": items}, human=lambda: st.out.rows(items, views.EXTENSION, "no extensions"))


@gofer_command(extension)
@click.argument("extension_id", metavar="ID")
def get(extension_id: str) -> None:
    """Show an extension: registration, state and documentation.

    \b
    Example:
      gofer extension get cron
    """
    st = state()
    body = st.client.get(path("extensions", extension_id))

    def human() -> None:
        ext = body.get("extension") or {}
        reg = ext.get("registration") or {}
        views.detail(
            st.out,
            {**reg, "state": ext.get("state"), "url": ext.get("url"), "started": ext.get("started")},
            [
                ("extension_id", "id"),
                ("image", "image"),
                ("status", "status"),
                ("state", "state"),
                ("url", "url"),
                ("started", "started"),
                ("created", "created"),
                ("modified", "modified"),
                ("additional_roles", "additional roles"),
                ("settings", "settings"),
            ],
            {
                **views.humanised_times(),
                "status": lambda v, r: views.styled(v),
                "state": lambda v, r: views.styled(v),
                "settings": lambda v, r: " ".join(f"{s.get('key')}={s.get('value')}" for s in v or []) or "-",
            },
        )
        doc = ext.get("documentation") or {}
        if doc.get("body") and not st.out.plain:
            st.out.print("\n" + str(doc["body"]))

    st.out.document(body, human=human)


@gofer_command(extension)
@click.argument("extension_id", metavar="ID")
@click.argument("image")
@click.option(
    "-s", "--setting", "settings", multiple=True, metavar="KEY=VALUE", help="An extension setting (repeatable)."
)
@click.option(
    "-a", "--additional-role", "roles", multiple=True, metavar="ROLE", help="An extra role for its token (repeatable)."
)
@click.option("--registry-user", default=None, help="User for a private registry.")
@click.option(
    "--registry-pass",
    default=None,
    help="Password for a private registry (or GOFER_REGISTRY_PASS).",
    envvar="GOFER_REGISTRY_PASS",
)
def install(
    extension_id: str,
    image: str,
    settings: tuple[str, ...],
    roles: tuple[str, ...],
    registry_user: str | None,
    registry_pass: str | None,
) -> None:
    """Install and start an extension (admin).

    \b
    Example:
      gofer extension install cron ghcr.io/clintjedwards/gofer/extensions/cron:latest -s timezone=UTC
    """
    if (registry_user is None) != (registry_pass is None):
        raise UsageError("--registry-user and --registry-pass go together")
    body = {
        "id": extension_id,
        "image": image,
        "settings": parse_pairs(settings, "-s"),
        "additional_roles": list(roles) or None,
        "registry_auth": {"user": registry_user, "pass": registry_pass} if registry_user is not None else None,
    }
    st = state()
    answer = st.client.post("/extensions", {k: v for k, v in body.items() if v is not None})
    st.out.document(answer, human=lambda: st.out.done(f"Extension {extension_id} installed."))


@gofer_command(extension)
@click.argument("extension_id", metavar="ID")
def uninstall(extension_id: str) -> None:
    """Stop and remove an extension with its subscriptions (admin).

    \b
    Example:
      gofer extension uninstall cron
    """
    result = state().client.mutate("DELETE", path("extensions", extension_id))
    report_mutation(result, f"Extension {extension_id} uninstalled.")


def _enable(extension_id: str, enable: bool) -> None:
    result = state().client.mutate("PATCH", path("extensions", extension_id), {"enable": enable})
    report_mutation(result, f"Extension {extension_id} {'enabled' if enable else 'disabled'}.")


@gofer_command(extension)
@click.argument("extension_id", metavar="ID")
def enable(extension_id: str) -> None:
    """Enable an extension (admin).

    \b
    Example:
      gofer extension enable cron
    """
    _enable(extension_id, True)


@gofer_command(extension)
@click.argument("extension_id", metavar="ID")
def disable(extension_id: str) -> None:
    """Disable an extension: pipelines cannot use it until enabled (admin).

    \b
    Example:
      gofer extension disable cron
    """
    _enable(extension_id, False)


@gofer_command(extension)
@click.argument("extension_id", metavar="ID")
def logs(extension_id: str) -> None:
    """Stream an extension container's logs (until it stops or Ctrl-C). JSON: one {"text"} object per line.

    \b
    Example:
      gofer extension logs cron
    """
    st = state()

    async def stream() -> None:
        async with streams.open_stream(st.client, path("extensions", extension_id, "logs")) as ws:
            async for frame in streams.frames(ws):
                text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
                for line in text.splitlines() or [""]:
                    if st.out.json:
                        st.out.stream({"text": line})
                    else:
                        st.out.line(line)

    asyncio.run(stream())


@gofer_command(extension)
@click.argument("extension_id", metavar="ID")
def debug(extension_id: str) -> None:
    """Print an extension's debug information.

    \b
    Example:
      gofer extension debug cron
    """
    st = state()
    body = st.client.get(path("extensions", extension_id, "debug"))
    st.out.document(body, human=lambda: st.out.line(str(body.get("info", ""))))


# --- events -----------------------------------------------------------------------------------------------------


@click.group(cls=GoferGroup)
def event() -> None:
    """Events: everything that happened, scoped to what your token may read.

    \b
    Example:
      gofer event list --follow
    """


@gofer_command(event, "list")
@list_options
@click.option("-f", "--follow", is_flag=True, help="Print new events live, one per line, until Ctrl-C.")
@click.option("--history", is_flag=True, help="With --follow: replay every stored event first.")
def event_list(page: Page, follow: bool, history: bool) -> None:
    """List events (oldest first; --reverse for the newest), or follow them live with --follow.

    With --follow the pagination flags do not apply: the stream starts now (or, with --history, at the oldest
    stored event). With --output json and --follow: one event object per line.

    \b
    Examples:
      gofer event list --reverse --limit 20
      gofer event list --follow --output json
    """
    st = state()
    if not follow:
        if history:
            raise click.UsageError("--history only applies with --follow")
        items = st.client.list("/events", "events", page)
        st.out.document({"events": items}, human=lambda: st.out.rows(items, views.EVENT, "no events"))
        return
    if page.everything or page.limit is not None or page.offset or page.reverse:
        raise click.UsageError("--limit, --offset, --reverse and --all do not apply with --follow")

    async def stream() -> None:
        async with streams.open_stream(st.client, "/events", {"history": True} if history else None) as ws:
            async for item in streams.json_frames(ws):
                if st.out.json:
                    st.out.stream(item)
                elif st.out.plain:
                    st.out.rows([item], views.EVENT)
                else:
                    kind, details = next(iter((item.get("kind") or {}).items()), ("?", {}))
                    fields = " ".join(f"{k}={v}" for k, v in (details or {}).items())
                    st.out.print(
                        Text.assemble(
                            (humanize.clock(item.get("emitted")), "dim"),
                            f" {item.get('id')} ",
                            (kind, "bold"),
                            f" {fields}",
                        )
                    )

    st.out.info("Following events (Ctrl-C to stop)…")
    asyncio.run(stream())


@gofer_command(event, "get")
@click.argument("event_id", metavar="ID")
def event_get(event_id: str) -> None:
    """Show one event.

    \b
    Example:
      gofer event get 42
    """
    st = state()
    body = st.client.get(path("events", event_id))

    def human() -> None:
        ev = body["event"]
        kind, details = next(iter((ev.get("kind") or {}).items()), ("?", {}))
        views.detail(
            st.out,
            {**ev, "kind": kind, "details": details},
            [("id", "id"), ("kind", "kind"), ("details", "details"), ("emitted", "emitted")],
            views.humanised_times(),
        )

    st.out.document(body, human=human)
