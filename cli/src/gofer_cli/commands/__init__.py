"""The ``gofer`` command tree, in Gofer's shape (docs/cli.md)."""

from __future__ import annotations

import click

from gofer_cli import __version__
from gofer_cli.commands import admin, extensions, misc, namespaces, pipelines, runs, tasks
from gofer_cli.commands.base import GoferGroup, global_options


@click.group(cls=GoferGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.version_option(__version__, "--version", prog_name="gofer")
@global_options
def cli() -> None:
    """gofer: the command line of Gofer, a platform that runs pipelines of container tasks.

    Settings come from flags, then GOFER_API_BASE_URL, GOFER_TOKEN and GOFER_NAMESPACE, then
    ~/.config/gofer/config.toml (and Gofer's ~/.gofer.toml); gofer context shows what is in effect.
    Every command takes --output json for the raw API fields. Exit codes: docs/cli.md.

    \b
    Examples:
      gofer up ./gofer.py                     register and deploy a pipeline
      gofer pipeline run build -v REF=main    start a run
      gofer run watch build                   follow the latest run live
    """


cli.add_command(namespaces.namespace)
cli.add_command(pipelines.pipeline)
cli.add_command(runs.run)
cli.add_command(tasks.task)
cli.add_command(admin.secret)
cli.add_command(extensions.extension)
cli.add_command(extensions.event)
cli.add_command(admin.token)
cli.add_command(admin.role)
cli.add_command(admin.system)
misc.register_commands(cli)
