"""``gofer pipeline ...``: pipelines, their configs, deployments, objects, secrets and subscriptions."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from gofer_cli import views
from gofer_cli.client import Page, path
from gofer_cli.commands import runs as run_commands
from gofer_cli.commands import stores
from gofer_cli.commands.base import GoferGroup, gofer_command, list_options, parse_pairs, report_mutation, state
from gofer_cli.output import Output


@click.group(cls=GoferGroup)
def pipeline() -> None:
    """Pipelines: their state, runs, configs, deployments, objects, secrets and subscriptions.

    \b
    Example:
      gofer pipeline list
    """


def pipeline_path(pipeline_id: str, *rest: object) -> str:
    return path("namespaces", state().namespace, "pipelines", pipeline_id, *rest)


@gofer_command(pipeline, "list")
@list_options
def list_(page: Page) -> None:
    """List the pipelines of the namespace.

    \b
    Example:
      gofer pipeline list --namespace team-a
    """
    st = state()
    items = st.client.list(path("namespaces", st.namespace, "pipelines"), "pipelines", page)
    st.out.document({"pipelines": items}, human=lambda: st.out.rows(items, views.PIPELINE, "no pipelines"))


def live_config(pipeline_id: str) -> dict[str, Any] | None:
    """The pipeline's live config version, or None when none is live."""
    return state().client.find(pipeline_path(pipeline_id, "configs"), "configs", lambda c: c.get("state") == "live")


def show_config(out: Output, config: dict[str, Any]) -> None:
    views.detail(
        out,
        config,
        [
            ("pipeline_id", "pipeline"),
            ("version", "version"),
            ("state", "state"),
            ("name", "name"),
            ("description", "description"),
            ("parallelism", "parallelism"),
            ("parallelism_mode", "parallelism mode"),
            ("logging", "logging"),
            ("registered", "registered"),
            ("deprecated", "deprecated"),
        ],
        {**views.humanised_times(), "state": lambda v, r: views.styled(v)},
    )
    tasks = list((config.get("tasks") or {}).values())
    if out.plain:
        out.rows(tasks, views.TASK)
        return
    out.print(Text("\nTasks", style="bold"))
    out.rows(tasks, views.TASK, "no tasks")


@gofer_command(pipeline)
@click.argument("pipeline_id")
def get(pipeline_id: str) -> None:
    """Show a pipeline and its live config.

    JSON: {"pipeline": <the API's pipeline metadata>, "config": <the live config, or null>}.

    \b
    Example:
      gofer pipeline get build
    """
    st = state()
    body = st.client.get(pipeline_path(pipeline_id))
    live = live_config(pipeline_id)

    def human() -> None:
        views.detail(
            st.out,
            body["pipeline"],
            [
                ("pipeline_id", "pipeline"),
                ("namespace_id", "namespace"),
                ("state", "state"),
                ("created", "created"),
                ("modified", "modified"),
            ],
            {**views.humanised_times(), "state": lambda v, r: views.styled(v)},
        )
        if live is None:
            st.out.info("No config version is live: deploy one with gofer pipeline config deploy.")
            return
        if not st.out.plain:
            st.out.print(Text(f"\nLive config: version {live['version']}", style="bold"))
        show_config(st.out, live)

    st.out.document({"pipeline": body["pipeline"], "config": live}, human=human)


pipeline.add_command(run_commands.start, "run")


def _set_state(pipeline_id: str, new_state: str, word: str) -> None:
    result = state().client.mutate("PATCH", pipeline_path(pipeline_id), {"state": new_state})
    report_mutation(
        result, f"Pipeline {pipeline_id} {word}.", f"Nothing changed: pipeline {pipeline_id} is already {new_state}."
    )


@gofer_command(pipeline)
@click.argument("pipeline_id")
def enable(pipeline_id: str) -> None:
    """Enable a pipeline: it accepts new runs again.

    \b
    Example:
      gofer pipeline enable build
    """
    _set_state(pipeline_id, "active", "enabled")


@gofer_command(pipeline)
@click.argument("pipeline_id")
def disable(pipeline_id: str) -> None:
    """Disable a pipeline: new runs are refused (503) until it is enabled.

    \b
    Example:
      gofer pipeline disable build
    """
    _set_state(pipeline_id, "disabled", "disabled")


@gofer_command(pipeline)
@click.argument("pipeline_id")
def delete(pipeline_id: str) -> None:
    """Delete a pipeline with its configs, runs, objects and secrets.

    \b
    Example:
      gofer pipeline delete build
    """
    result = state().client.mutate("DELETE", pipeline_path(pipeline_id))
    report_mutation(result, f"Pipeline {pipeline_id} deleted.")


@gofer_command(pipeline)
@click.argument("pipeline_id")
@click.argument("extension_id")
@click.argument("label")
@click.option(
    "-s", "--setting", "settings", multiple=True, metavar="KEY=VALUE", help="A subscription setting (repeatable)."
)
def subscribe(pipeline_id: str, extension_id: str, label: str, settings: tuple[str, ...]) -> None:
    """Subscribe a pipeline to an extension (a trigger such as a schedule), under LABEL.

    \b
    Example:
      gofer pipeline subscribe build cron nightly -s expression="0 3 * * *"
    """
    st = state()
    body = st.client.post(
        pipeline_path(pipeline_id, "subscriptions"),
        {"extension_id": extension_id, "subscription_id": label, "settings": parse_pairs(settings, "-s")},
    )
    st.out.document(body, human=lambda: st.out.done(f"Pipeline {pipeline_id} subscribed to {extension_id} ({label})."))


@gofer_command(pipeline)
@click.argument("pipeline_id")
@click.argument("extension_id")
@click.argument("label")
def unsubscribe(pipeline_id: str, extension_id: str, label: str) -> None:
    """Remove a pipeline's subscription to an extension.

    \b
    Example:
      gofer pipeline unsubscribe build cron nightly
    """
    result = state().client.mutate("DELETE", pipeline_path(pipeline_id, "subscriptions", extension_id, label))
    report_mutation(result, f"Subscription {extension_id}/{label} of {pipeline_id} removed.")


@pipeline.group(cls=GoferGroup)
def subscription() -> None:
    """A pipeline's extension subscriptions.

    \b
    Example:
      gofer pipeline subscription list build
    """


@gofer_command(subscription, "list")
@click.argument("pipeline_id")
@list_options
def subscription_list(pipeline_id: str, page: Page) -> None:
    """List a pipeline's subscriptions.

    \b
    Example:
      gofer pipeline subscription list build
    """
    st = state()
    items = st.client.list(pipeline_path(pipeline_id, "subscriptions"), "subscriptions", page)
    st.out.document({"subscriptions": items}, human=lambda: st.out.rows(items, views.SUBSCRIPTION, "no subscriptions"))


@gofer_command(subscription, "get")
@click.argument("pipeline_id")
@click.argument("extension_id")
@click.argument("label")
def subscription_get(pipeline_id: str, extension_id: str, label: str) -> None:
    """Show one subscription.

    \b
    Example:
      gofer pipeline subscription get build cron nightly
    """
    st = state()
    body = st.client.get(pipeline_path(pipeline_id, "subscriptions", extension_id, label))
    st.out.document(body, human=lambda: views.generic_detail(st.out, body.get("subscription") or {}))


# --- configs ----------------------------------------------------------------------------------------------------


@pipeline.group(cls=GoferGroup)
def config() -> None:
    """Registered config versions of a pipeline (register them with gofer up).

    \b
    Example:
      gofer pipeline config list build
    """


@gofer_command(config, "list")
@click.argument("pipeline_id")
@list_options
def config_list(pipeline_id: str, page: Page) -> None:
    """List a pipeline's config versions.

    \b
    Example:
      gofer pipeline config list build --reverse
    """
    st = state()
    items = st.client.list(pipeline_path(pipeline_id, "configs"), "configs", page)
    st.out.document({"configs": items}, human=lambda: st.out.rows(items, views.CONFIG, "no configs"))


@gofer_command(config, "get")
@click.argument("pipeline_id")
@click.argument("version", type=int, default=0, required=False)
def config_get(pipeline_id: str, version: int) -> None:
    """Show one config version with its tasks (VERSION 0 or none: the latest).

    \b
    Example:
      gofer pipeline config get build 3
    """
    st = state()
    body = st.client.get(pipeline_path(pipeline_id, "configs", version))
    st.out.document(body, human=lambda: show_config(st.out, body["config"]))


@gofer_command(config, "delete")
@click.argument("pipeline_id")
@click.argument("version", type=int)
def config_delete(pipeline_id: str, version: int) -> None:
    """Delete a config version (neither the live one nor the latest).

    \b
    Example:
      gofer pipeline config delete build 2
    """
    result = state().client.mutate("DELETE", pipeline_path(pipeline_id, "configs", version))
    report_mutation(result, f"Config version {version} of {pipeline_id} deleted.")


@gofer_command(config, "deploy")
@click.argument("pipeline_id")
@click.argument("version", type=int)
def config_deploy(pipeline_id: str, version: int) -> None:
    """Make a config version live: new runs use it.

    JSON: {"deployment": {...}, "changed": bool, "message": str|null}.

    \b
    Example:
      gofer pipeline config deploy build 3
    """
    result = state().client.mutate("POST", pipeline_path(pipeline_id, "configs", version))
    report_mutation(
        result, f"Version {version} of {pipeline_id} is live.", f"Nothing changed: version {version} is already live."
    )


# --- deployments ------------------------------------------------------------------------------------------------


@pipeline.group(cls=GoferGroup)
def deployment() -> None:
    """Deployments: the history of which version went live when.

    \b
    Example:
      gofer pipeline deployment list build
    """


@gofer_command(deployment, "list")
@click.argument("pipeline_id")
@list_options
def deployment_list(pipeline_id: str, page: Page) -> None:
    """List a pipeline's deployments.

    \b
    Example:
      gofer pipeline deployment list build --reverse --limit 5
    """
    st = state()
    items = st.client.list(pipeline_path(pipeline_id, "deployments"), "deployments", page)
    st.out.document({"deployments": items}, human=lambda: st.out.rows(items, views.DEPLOYMENT, "no deployments"))


@gofer_command(deployment, "get")
@click.argument("pipeline_id")
@click.argument("deployment_id", type=int)
def deployment_get(pipeline_id: str, deployment_id: int) -> None:
    """Show one deployment.

    \b
    Example:
      gofer pipeline deployment get build 1
    """
    st = state()
    body = st.client.get(pipeline_path(pipeline_id, "deployments", deployment_id))
    st.out.document(body, human=lambda: views.generic_detail(st.out, body["deployment"], skip=("logs",)))


# --- objects ----------------------------------------------------------------------------------------------------


@pipeline.group("object", cls=GoferGroup)
def object_() -> None:
    """Pipeline objects: files kept with the pipeline, for its tasks (pipeline_object{{key}}).

    \b
    Example:
      gofer pipeline object put build cache.tar ./cache.tar
    """


def _pipeline_base(pipeline_id: str) -> tuple[object, ...]:
    return ("namespaces", state().namespace, "pipelines", pipeline_id)


@gofer_command(object_, "list")
@click.argument("pipeline_id")
@list_options
def object_list(pipeline_id: str, page: Page) -> None:
    """List a pipeline's objects.

    \b
    Example:
      gofer pipeline object list build
    """
    stores.list_objects(_pipeline_base(pipeline_id), page)


@gofer_command(object_, "get")
@click.argument("pipeline_id")
@click.argument("key")
@click.option(
    "-f",
    "--file",
    "file",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write to this file instead of stdout.",
)
def object_get(pipeline_id: str, key: str, file: str | None) -> None:
    """Download a pipeline object (to stdout, or --file). JSON: {"key", "size", "content", "content_base64"}.

    \b
    Example:
      gofer pipeline object get build cache.tar --file cache.tar
    """
    stores.get_object(_pipeline_base(pipeline_id), key, file)


@gofer_command(object_, "put")
@click.argument("pipeline_id")
@click.argument("key")
@click.argument("source", metavar="PATH|-")
@click.option("--force", is_flag=True, help="Replace the object if the key exists.")
def object_put(pipeline_id: str, key: str, source: str, force: bool) -> None:
    """Upload a file (or stdin, with -) as a pipeline object.

    \b
    Examples:
      gofer pipeline object put build cache.tar ./cache.tar
      echo hello | gofer pipeline object put build greeting - --force
    """
    stores.put_object(_pipeline_base(pipeline_id), key, source, force)


@gofer_command(object_, "delete")
@click.argument("pipeline_id")
@click.argument("key")
def object_delete(pipeline_id: str, key: str) -> None:
    """Delete a pipeline object.

    \b
    Example:
      gofer pipeline object delete build cache.tar
    """
    stores.delete_object(_pipeline_base(pipeline_id), key)


# --- secrets ----------------------------------------------------------------------------------------------------


@pipeline.group(cls=GoferGroup)
def secret() -> None:
    """Pipeline secrets, for its tasks (pipeline_secret{{key}}).

    \b
    Example:
      gofer pipeline secret put build api_key @./api_key.txt
    """


@gofer_command(secret, "list")
@click.argument("pipeline_id")
@list_options
def secret_list(pipeline_id: str, page: Page) -> None:
    """List a pipeline's secrets (keys only).

    \b
    Example:
      gofer pipeline secret list build
    """
    stores.list_secrets(pipeline_path(pipeline_id, "secrets"), page)


@gofer_command(secret, "get")
@click.argument("pipeline_id")
@click.argument("key")
@click.option("-i", "--include-secret", is_flag=True, help="Show the value too (needs write permission on secrets).")
def secret_get(pipeline_id: str, key: str, include_secret: bool) -> None:
    """Show a pipeline secret's metadata (and, with -i, its value).

    \b
    Example:
      gofer pipeline secret get build api_key -i
    """
    stores.get_secret(pipeline_path(pipeline_id, "secrets", key), include_secret)


@gofer_command(secret, "put")
@click.argument("pipeline_id")
@click.argument("key")
@click.argument("value", metavar="SECRET|@PATH|-")
@click.option("--force", is_flag=True, help="Replace the secret if the key exists.")
def secret_put(pipeline_id: str, key: str, value: str, force: bool) -> None:
    """Store a pipeline secret: the value itself, @PATH for a file's content, or - to read stdin.

    \b
    Examples:
      gofer pipeline secret put build api_key s3cr3t
      gofer pipeline secret put build api_key - --force < api_key.txt
    """
    body = {"key": key, "content": stores.secret_value(value), "force": force}
    stores.put_secret(pipeline_path(pipeline_id, "secrets"), body, key)


@gofer_command(secret, "delete")
@click.argument("pipeline_id")
@click.argument("key")
def secret_delete(pipeline_id: str, key: str) -> None:
    """Delete a pipeline secret.

    \b
    Example:
      gofer pipeline secret delete build api_key
    """
    stores.delete_secret(pipeline_path(pipeline_id, "secrets", key), key)
