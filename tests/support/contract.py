"""Gofer v0's contract as the tests know it: tests/fixtures/gofer_v0_contract.json, extracted from Gofer's OpenAPI
document by tests/fixtures/update_gofer_v0_contract.py (the suite reads nothing outside the repository)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gofer_v0_contract.json"
METHODS = ("get", "post", "put", "patch", "delete")
# Websocket-only in Gofer v0: served by Channels routes; the HTTP GET on the logs path is ours too.
WEBSOCKET_ONLY = {
    ("GET", "/api/namespaces/{namespace_id}/pipelines/{pipeline_id}/runs/{run_id}/tasks/{task_id}/logs"),
    ("GET", "/api/namespaces/{namespace_id}/pipelines/{pipeline_id}/runs/{run_id}/tasks/{task_id}/attach"),
}


# The fields of a Run and a TaskExecution in API answers: Gofer v0's, and ours (token_id, store_objects_expired,
# logs_removed, scheduler, container_id, image_digest are v0's too). Tests of the API and of the CLI's raw JSON use them.
RUN_FIELDS = frozenset(
    {
        "namespace_id",
        "pipeline_id",
        "pipeline_config_version",
        "run_id",
        "queued",
        "started",
        "ended",
        "state",
        "status",
        "status_reason",
        "initiator",
        "variables",
        "token_id",
        "store_objects_expired",
    }
)
TASK_EXECUTION_FIELDS = frozenset(
    {
        "namespace_id",
        "pipeline_id",
        "run_id",
        "task_id",
        "task",
        "created",
        "started",
        "ended",
        "exit_code",
        "logs_expired",
        "logs_removed",
        "state",
        "status",
        "status_reason",
        "variables",
        "scheduler",
        "container_id",
        "image_digest",
    }
)


@functools.cache
def _operations() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads(FIXTURE.read_text())["operations"])


def reference_operations() -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, /api/path/{param}) -> {"method", "path", "operation_id", "tag", "success": ["201"]}."""
    return {(op["method"], op["path"]): dict(op) for op in _operations()}
