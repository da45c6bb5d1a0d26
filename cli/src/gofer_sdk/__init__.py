"""gofer_sdk: write Gofer pipelines in typed Python.

A pipeline file builds a ``Pipeline`` of ``Task``s and calls ``finish()``, which validates the config with the
server's rules and prints it as JSON; ``gofer up FILE`` runs the file with the CLI's own interpreter, reads that JSON,
shows the difference with the live version, registers and deploys it::

    from gofer_sdk import Pipeline, Task

    Pipeline("hello", "Hello").tasks(
        Task("greet", "busybox:latest").command("echo", "hello"),
    ).finish()

Public names: ``Pipeline``, ``Task``, ``RequiredParentStatus``, ``ParallelismMode``, ``script``, the interpolation
wrappers ``pipeline_secret``, ``global_secret``, ``pipeline_object``, ``run_object``, and ``validate_config``,
``ConfigError``, ``FieldError`` for checking a config given as a dict.
"""

from gofer_sdk.interpolation import global_secret, pipeline_object, pipeline_secret, run_object
from gofer_sdk.pipeline import ParallelismMode, Pipeline, RequiredParentStatus, Task, script
from gofer_sdk.validation import ConfigError, FieldError, check_identifier, validate_config

__all__ = [
    "ConfigError",
    "FieldError",
    "ParallelismMode",
    "Pipeline",
    "RequiredParentStatus",
    "Task",
    "check_identifier",
    "global_secret",
    "pipeline_object",
    "pipeline_secret",
    "run_object",
    "script",
    "validate_config",
]

__version__ = "0.9.1"
