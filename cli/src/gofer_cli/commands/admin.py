"""``gofer secret global``, ``gofer token``, ``gofer role``, ``gofer system``: mostly admin-only routes."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.text import Text

from gofer_cli import views
from gofer_cli.client import Client, Page, path
from gofer_cli.commands import stores
from gofer_cli.commands.base import GoferGroup, gofer_command, list_options, parse_pairs, report_mutation, state
from gofer_cli.errors import UsageError

# --- global secrets ---------------------------------------------------------------------------------------------


@click.group(cls=GoferGroup)
def secret() -> None:
    """Secrets. Pipeline secrets are under gofer pipeline secret; global ones (admin) here.

    \b
    Example:
      gofer secret global list
    """


@secret.group("global", cls=GoferGroup)
def global_() -> None:
    """Global secrets (admin): usable by the namespaces their regexes allow (global_secret{{key}}).

    \b
    Example:
      gofer secret global put registry_token s3cr3t --namespaces '^team-'
    """


@gofer_command(global_, "list")
@list_options
def global_list(page: Page) -> None:
    """List global secrets (keys and namespace regexes).

    \b
    Example:
      gofer secret global list
    """
    stores.list_secrets("/secrets/global", page)


@gofer_command(global_, "get")
@click.argument("key")
@click.option("-i", "--include-secret", is_flag=True, help="Show the value too.")
def global_get(key: str, include_secret: bool) -> None:
    """Show a global secret's metadata (and, with -i, its value).

    \b
    Example:
      gofer secret global get registry_token
    """
    stores.get_secret(path("secrets", "global", key), include_secret)


@gofer_command(global_, "put")
@click.argument("key")
@click.argument("value", metavar="SECRET|@PATH|-")
@click.option(
    "-n",
    "--namespaces",
    "namespaces",
    multiple=True,
    metavar="REGEX",
    help="A regex of namespaces allowed to use it (repeatable; default: '.*', every namespace).",
)
@click.option("--force", is_flag=True, help="Replace the secret if the key exists.")
def global_put(key: str, value: str, namespaces: tuple[str, ...], force: bool) -> None:
    """Store a global secret: the value itself, @PATH for a file's content, or - to read stdin.

    \b
    Example:
      gofer secret global put registry_token @token.txt -n '^team-a$' -n '^team-b$'
    """
    body = {"key": key, "content": stores.secret_value(value), "namespaces": list(namespaces) or [".*"], "force": force}
    stores.put_secret("/secrets/global", body, key)


@gofer_command(global_, "delete")
@click.argument("key")
def global_delete(key: str) -> None:
    """Delete a global secret.

    \b
    Example:
      gofer secret global delete registry_token
    """
    stores.delete_secret(path("secrets", "global", key), key)


# --- tokens -----------------------------------------------------------------------------------------------------


@click.group(cls=GoferGroup)
def token() -> None:
    """API tokens (admin), your own (whoami) and the first one (bootstrap).

    \b
    Example:
      gofer token create ci-bot --role user --expires 2592000
    """


@gofer_command(token, "list")
@list_options
def token_list(page: Page) -> None:
    """List tokens (never their secrets).

    \b
    Example:
      gofer token list --all
    """
    st = state()
    items = st.client.list("/tokens", "tokens", page)
    st.out.document({"tokens": items}, human=lambda: st.out.rows(items, views.TOKEN, "no tokens"))


def _show_token(obj: dict[str, Any]) -> None:
    out = state().out
    views.detail(
        out,
        obj,
        [
            ("id", "id"),
            ("user", "user"),
            ("kind", "kind"),
            ("roles", "roles"),
            ("metadata", "metadata"),
            ("created", "created"),
            ("expires", "expires"),
            ("disabled", "disabled"),
            ("last_used", "last used"),
        ],
        {
            **views.humanised_times(),
            "expires": lambda v, r: "never" if not v else views.humanised_times()["created"](v, r),
            "roles": lambda v, r: ", ".join(v or []) or "-",
        },
    )


@gofer_command(token, "get")
@click.argument("token_id", metavar="ID")
def token_get(token_id: str) -> None:
    """Show a token.

    \b
    Example:
      gofer token get 3f6c0d2e-9a5b-4c7d-8e1f-2a3b4c5d6e7f
    """
    st = state()
    body = st.client.get(path("tokens", token_id))
    st.out.document(body, human=lambda: _show_token(body["token"]))


@gofer_command(token, "whoami")
def whoami() -> None:
    """Show the token in use.

    \b
    Example:
      gofer token whoami
    """
    st = state()
    body = st.client.get("/tokens/whoami")
    st.out.document(body, human=lambda: _show_token(body["token"]))


def _created_token(body: dict[str, Any]) -> None:
    out = state().out
    if out.plain:
        out.line(body["secret"])
        return
    _show_token(body["token_details"])
    out.print(Text.assemble(("\nsecret  ", "bold"), (body["secret"], "bold green")))
    out.hint("The secret is shown once and never again: keep it now (for example: export GOFER_TOKEN=<secret>).")


@gofer_command(token, "create")
@click.argument("user")
@click.option("-r", "--role", "roles", multiple=True, metavar="ROLE", help="A role to give it (repeatable).")
@click.option(
    "-e", "--expires", type=click.IntRange(0), default=0, show_default=True, help="Lifetime in seconds; 0 means never."
)
@click.option("-m", "--metadata", "metadata", multiple=True, metavar="KEY=VALUE", help="Metadata (repeatable).")
def token_create(user: str, roles: tuple[str, ...], expires: int, metadata: tuple[str, ...]) -> None:
    """Create a token for USER (admin). The secret is printed once. Plain output prints only the secret.

    \b
    Example:
      gofer token create alice@example.com --role team-a-deployers --expires 2592000 -m team=a
    """
    st = state()
    body = st.client.post(
        "/tokens", {"user": user, "roles": list(roles), "expires": expires, "metadata": parse_pairs(metadata, "-m")}
    )
    st.out.document(body, human=lambda: _created_token(body), plain=lambda: _created_token(body))


@gofer_command(token, "bootstrap")
def bootstrap() -> None:
    """Create the first admin token of a new server (works once). Plain output prints only the secret.

    \b
    Example:
      export GOFER_TOKEN=$(gofer token bootstrap --output plain)
    """
    st = state()
    # The bootstrap route is public: a stale token in the environment must not get in the way.
    client = Client(st.client.base_url)
    body = client.post("/tokens/bootstrap")
    st.out.document(body, human=lambda: _created_token(body), plain=lambda: _created_token(body))


def _set_disabled(token_id: str, disabled: bool) -> None:
    result = state().client.mutate("PATCH", path("tokens", token_id), {"disabled": disabled})
    word = "disabled" if disabled else "enabled"
    report_mutation(result, f"Token {token_id} {word}.", f"Nothing changed: the token is already {word}.")


@gofer_command(token, "enable")
@click.argument("token_id", metavar="ID")
def token_enable(token_id: str) -> None:
    """Enable a token.

    \b
    Example:
      gofer token enable 3f6c0d2e-9a5b-4c7d-8e1f-2a3b4c5d6e7f
    """
    _set_disabled(token_id, False)


@gofer_command(token, "disable")
@click.argument("token_id", metavar="ID")
def token_disable(token_id: str) -> None:
    """Disable a token: requests with it get 401 until it is enabled.

    \b
    Example:
      gofer token disable 3f6c0d2e-9a5b-4c7d-8e1f-2a3b4c5d6e7f
    """
    _set_disabled(token_id, True)


@gofer_command(token, "delete")
@click.argument("token_id", metavar="ID")
def token_delete(token_id: str) -> None:
    """Delete a token.

    \b
    Example:
      gofer token delete 3f6c0d2e-9a5b-4c7d-8e1f-2a3b4c5d6e7f
    """
    result = state().client.mutate("DELETE", path("tokens", token_id))
    report_mutation(result, f"Token {token_id} deleted.")


# --- roles ------------------------------------------------------------------------------------------------------


@click.group(cls=GoferGroup)
def role() -> None:
    """Roles: lists of permissions given to tokens.

    \b
    Example:
      gofer role create readers "read everything" -p 'all=read'
    """


def parse_permissions(compact: tuple[str, ...], as_json: str | None) -> list[dict[str, list[str]]] | None:
    """Permissions from ``-p RESOURCE[,RESOURCE...]=ACTION[,ACTION...]`` options and/or ``--permissions-json``.

    The compact form splits at the last ``=`` (actions never contain one); a regex target holding a comma needs
    the JSON form. Returns None when neither is given.
    """
    permissions: list[dict[str, list[str]]] = []
    if as_json is not None:
        text = stores.secret_value(as_json) if as_json.startswith("@") or as_json == "-" else as_json
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"--permissions-json: not valid JSON: {exc}") from None
        if not isinstance(loaded, list):
            raise UsageError("--permissions-json: must be a list of {resources, actions}")
        permissions.extend(loaded)
    for item in compact:
        resources, sep, actions = item.rpartition("=")
        if not sep or not resources or not actions:
            raise UsageError(f"-p {item!r}: expected RESOURCE[,RESOURCE...]=ACTION[,ACTION...]")
        permissions.append({"resources": resources.split(","), "actions": actions.split(",")})
    if not compact and as_json is None:
        return None
    return permissions


PERMISSION_HELP = (
    "A permission RESOURCES=ACTIONS, e.g. 'namespaces:^team-a$,pipelines:.*,runs=read,write' (repeatable)."
)
JSON_HELP = 'Permissions as JSON ([{"resources": [...], "actions": [...]}]), or @PATH, or - for stdin.'


@gofer_command(role, "list")
@list_options
def role_list(page: Page) -> None:
    """List roles.

    \b
    Example:
      gofer role list
    """
    st = state()
    items = st.client.list("/roles", "roles", page)
    st.out.document({"roles": items}, human=lambda: st.out.rows(items, views.ROLE, "no roles"))


def _show_role(obj: dict[str, Any]) -> None:
    out = state().out
    views.detail(out, obj, [("id", "id"), ("description", "description"), ("system_role", "system role")])
    if not out.plain:
        out.print(Text("\nPermissions", style="bold"))
    out.rows(obj.get("permissions") or [], views.PERMISSION, "no permissions")


@gofer_command(role, "get")
@click.argument("role_id", metavar="ID")
def role_get(role_id: str) -> None:
    """Show a role and its permissions.

    \b
    Example:
      gofer role get user
    """
    st = state()
    body = st.client.get(path("roles", role_id))
    st.out.document(body, human=lambda: _show_role(body["role"]))


@gofer_command(role, "create")
@click.argument("role_id", metavar="ID")
@click.argument("description")
@click.option("-p", "--permission", "permissions", multiple=True, metavar="RESOURCES=ACTIONS", help=PERMISSION_HELP)
@click.option("--permissions-json", default=None, metavar="JSON", help=JSON_HELP)
def role_create(role_id: str, description: str, permissions: tuple[str, ...], permissions_json: str | None) -> None:
    """Create a role (admin).

    \b
    Example:
      gofer role create team-a-deployers "deploy team-a" \\
        -p 'namespaces:^team-a$,pipelines:.*,configs,deployments,runs=read,write'
    """
    st = state()
    body = st.client.post(
        "/roles",
        {
            "id": role_id,
            "description": description,
            "permissions": parse_permissions(permissions, permissions_json) or [],
        },
    )
    st.out.document(body, human=lambda: st.out.done(f"Role {role_id} created."))


@gofer_command(role, "update")
@click.argument("role_id", metavar="ID")
@click.option("-d", "--description", default=None, help="New description.")
@click.option(
    "-p",
    "--permission",
    "permissions",
    multiple=True,
    metavar="RESOURCES=ACTIONS",
    help="Replace the permissions with these (repeatable). " + PERMISSION_HELP,
)
@click.option("--permissions-json", default=None, metavar="JSON", help=JSON_HELP)
def role_update(
    role_id: str, description: str | None, permissions: tuple[str, ...], permissions_json: str | None
) -> None:
    """Change a role's description or replace its permissions (admin).

    \b
    Example:
      gofer role update readers -d "read all namespaces"
    """
    body: dict[str, Any] = {}
    if description is not None:
        body["description"] = description
    parsed = parse_permissions(permissions, permissions_json)
    if parsed is not None:
        body["permissions"] = parsed
    if not body:
        raise click.UsageError("give --description, --permission or --permissions-json")
    result = state().client.mutate("PATCH", path("roles", role_id), body)
    report_mutation(result, f"Role {role_id} updated.")


@gofer_command(role, "delete")
@click.argument("role_id", metavar="ID")
def role_delete(role_id: str) -> None:
    """Delete a role (admin; system roles cannot be deleted).

    \b
    Example:
      gofer role delete readers
    """
    result = state().client.mutate("DELETE", path("roles", role_id))
    report_mutation(result, f"Role {role_id} deleted.")


# --- system -----------------------------------------------------------------------------------------------------


@click.group(cls=GoferGroup)
def system() -> None:
    """System preferences (admin): the kill switch for new runs.

    \b
    Example:
      gofer system get
    """


@gofer_command(system, "get")
def system_get() -> None:
    """Show the system preferences.

    \b
    Example:
      gofer system get --output json
    """
    st = state()
    body = st.client.get("/system")
    st.out.document(body, human=lambda: views.generic_detail(st.out, body))


@gofer_command(system, "update")
@click.option(
    "--ignore-pipeline-run-events/--no-ignore-pipeline-run-events",
    default=None,
    help="Refuse every new run (the kill switch), or accept them again.",
)
def system_update(ignore_pipeline_run_events: bool | None) -> None:
    """Change the system preferences.

    \b
    Example:
      gofer system update --ignore-pipeline-run-events
    """
    if ignore_pipeline_run_events is None:
        raise click.UsageError("give --ignore-pipeline-run-events or --no-ignore-pipeline-run-events")
    result = state().client.mutate("PATCH", "/system", {"ignore_pipeline_run_events": ignore_pipeline_run_events})
    word = "refused" if ignore_pipeline_run_events else "accepted"
    report_mutation(result, f"New runs are {word}.")
