"""``gofer namespace ...``: list, get, create, update, delete, and set the default."""

from __future__ import annotations

import click

from gofer_cli import config, views
from gofer_cli.client import Page, path
from gofer_cli.commands.base import GoferGroup, gofer_command, list_options, report_mutation, state


@click.group(cls=GoferGroup)
def namespace() -> None:
    """Namespaces: the tenants that hold pipelines.

    \b
    Example:
      gofer namespace list
    """


@gofer_command(namespace, "list")
@list_options
def list_(page: Page) -> None:
    """List the namespaces this token can see.

    \b
    Example:
      gofer namespace list --output json
    """
    st = state()
    items = st.client.list("/namespaces", "namespaces", page)
    st.out.document({"namespaces": items}, human=lambda: st.out.rows(items, views.NAMESPACE, "no namespaces"))


@gofer_command(namespace)
@click.argument("namespace_id", metavar="ID")
def get(namespace_id: str) -> None:
    """Show one namespace.

    \b
    Example:
      gofer namespace get team-a
    """
    st = state()
    body = st.client.get(path("namespaces", namespace_id))
    st.out.document(body, human=lambda: views.generic_detail(st.out, body["namespace"]))


@gofer_command(namespace)
@click.argument("namespace_id", metavar="ID")
@click.argument("name")
@click.argument("description", required=False, default="")
def create(namespace_id: str, name: str, description: str) -> None:
    """Create a namespace (admin). IDs are 3 to 32 letters, digits and '-'.

    \b
    Example:
      gofer namespace create team-a "Team A" "Team A's pipelines"
    """
    st = state()
    body = st.client.post("/namespaces", {"id": namespace_id, "name": name, "description": description})
    st.out.document(body, human=lambda: st.out.done(f"Namespace {namespace_id} created."))


@gofer_command(namespace)
@click.argument("namespace_id", metavar="ID")
@click.option("--name", default=None, help="New name.")
@click.option("-d", "--description", default=None, help="New description.")
def update(namespace_id: str, name: str | None, description: str | None) -> None:
    """Change a namespace's name or description (admin).

    \b
    Example:
      gofer namespace update team-a --description "Team A, now with more pipelines"
    """
    body = {k: v for k, v in (("name", name), ("description", description)) if v is not None}
    if not body:
        raise click.UsageError("give --name or --description")
    result = state().client.mutate("PATCH", path("namespaces", namespace_id), body)
    report_mutation(result, f"Namespace {namespace_id} updated.")


@gofer_command(namespace)
@click.argument("namespace_id", metavar="ID")
def delete(namespace_id: str) -> None:
    """Delete a namespace and everything in it (admin).

    \b
    Example:
      gofer namespace delete team-a
    """
    result = state().client.mutate("DELETE", path("namespaces", namespace_id))
    report_mutation(result, f"Namespace {namespace_id} deleted.")


@gofer_command(namespace, "set")
@click.argument("namespace_id", metavar="ID")
@click.option("--no-check", is_flag=True, help="Save it without asking the server whether it exists.")
def set_(namespace_id: str, no_check: bool) -> None:
    """Save ID as the default namespace in ~/.config/gofer/config.toml.

    The server is asked first whether the namespace exists (and is visible to your token), unless --no-check.

    \b
    Example:
      gofer namespace set team-a
    """
    st = state()
    if not no_check:
        st.client.get(path("namespaces", namespace_id))
    saved = config.save("namespace", namespace_id)
    st.out.document(
        {"namespace": namespace_id, "config_file": str(saved)},
        human=lambda: st.out.done(f"Default namespace is now {namespace_id} (saved in {saved})."),
    )
    env = config.ENV["namespace"]
    import os

    if os.environ.get(env):
        st.out.warn(f"{env}={os.environ[env]} is set and overrides the config file")
