"""The permissions of the system roles. A data migration writes them; changing them needs a new migration."""

from kernel.choices import SystemRole

SYSTEM_ROLE_PERMISSIONS: dict[str, tuple[str, list[dict[str, list[str]]]]] = {
    SystemRole.BOOTSTRAP: (
        "The first token's role: everything. Cannot be assigned to new tokens.",
        [{"resources": ["all"], "actions": ["read", "write", "delete"]}],
    ),
    SystemRole.ADMIN: (
        "Administrators: everything, including admin-only routes.",
        [{"resources": ["all"], "actions": ["read", "write", "delete"]}],
    ),
    SystemRole.USER: (
        "Ordinary users: the default namespace's pipelines and all that hangs off them.",
        [
            {
                "resources": [
                    "namespaces:^default$",
                    "pipelines:.*",
                    "configs",
                    "deployments",
                    "events",
                    "objects",
                    "runs",
                    "task_executions",
                    "secrets",
                    "subscriptions",
                ],
                "actions": ["read", "write", "delete"],
            }
        ],
    ),
    SystemRole.ANONYMOUS: (
        "Requests without a token, on the routes that allow them: read the default namespace's pipelines and runs.",
        [{"resources": ["namespaces:^default$", "pipelines:.*", "runs"], "actions": ["read"]}],
    ),
}
