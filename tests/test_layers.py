"""The layers of docs/architecture.md, enforced: every import between Gofer's apps points down, so there is no
cycle; the kernel imports no app; a function-level import says why it must be lazy; the CLI imports no server code.

Read from the source with ``ast`` (nothing is imported), so the test also catches imports in code paths no other
test runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Bottom first. An app may import its own modules and those of apps in lower layers, nothing else.
LAYERS: list[str] = [
    "kernel",  # errors, identifiers, times, encryption, RBAC and tenant scoping in SQL, the gate, the v0 protocol
    "telemetry",  # traces, metrics, the health probes
    "console",  # the operators' console machinery (admin mixins)
    "events",  # the event log
    "pipelines",  # namespaces (the tenants), pipelines, configs, the task spec, deployments
    "access",  # tokens, roles, the access gate's implementation
    "secretstore",  # pipeline and global secrets
    "runs",  # runs, task executions, the engine, schedulers, logs
    "objectstore",  # pipeline, run and extension objects
    "triggers",  # extensions and subscriptions that start runs
    "notifiers",  # extensions that tell people
    "sandbox",  # the public sandbox's visitors: a namespace and a token each
    "gofer_site",  # wiring only: settings, URLs, ASGI
]
RANK = {app: index for index, app in enumerate(LAYERS)}
LAZY_MARK = "# lazy:"


def _python_files(app: str) -> list[Path]:
    return [p for p in (REPO / app).rglob("*.py") if "migrations" not in p.parts]


def _imported_apps(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names = [node.module]
    else:
        return []
    return [name.split(".")[0] for name in names if name.split(".")[0] in RANK]


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported app, inside a function) for every import of a Gofer app in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str, bool]] = []

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            for app in _imported_apps(child):
                found.append((child.lineno, app, in_function))
            walk(child, inner)

    walk(tree, False)
    return found


def _function_level_imports(path: Path) -> list[int]:
    """Lines of every import statement (of anything) inside a function body."""
    tree = ast.parse(path.read_text(), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    lines.append(inner.lineno)
    return lines


def _explained(source: list[str], line: int) -> bool:
    """Whether the import on ``line`` (1-based) carries the lazy mark: on its own line, or in the comments and
    imports of the block it belongs to (one comment explains a group of lazy imports)."""
    index = line - 1
    while index >= 0:
        text = source[index].strip()
        if LAZY_MARK in text.lower():
            return True
        if index != line - 1 and not (text.startswith(("import ", "from ", "#")) or text == ""):
            return False
        index -= 1
    return False


@pytest.mark.parametrize("app", LAYERS)
def test_every_import_of_an_app_points_down_the_layers(app):
    upward = []
    for path in _python_files(app):
        for line, imported, _ in _imports(path):
            if imported != app and RANK[imported] >= RANK[app]:
                upward.append(f"{path.relative_to(REPO)}:{line} imports {imported}")
    assert not upward, "imports that do not point down the layers (docs/architecture.md):\n" + "\n".join(upward)


def test_the_kernel_imports_no_app():
    offending = [
        f"{path.relative_to(REPO)}:{line} imports {imported}"
        for path in _python_files("kernel")
        for line, imported, _ in _imports(path)
        if imported != "kernel"
    ]
    assert not offending, "\n".join(offending)


def test_every_app_on_disk_has_a_layer():
    apps = {p.parent.name for p in REPO.glob("*/apps.py")}
    assert apps - set(RANK) == set(), "an app without a layer: add it to LAYERS and docs/architecture.md"


@pytest.mark.parametrize("app", LAYERS)
def test_a_function_level_import_says_why_it_is_lazy(app):
    unexplained = []
    for path in _python_files(app):
        source = path.read_text().splitlines()
        for line in _function_level_imports(path):
            if not _explained(source, line):
                unexplained.append(f"{path.relative_to(REPO)}:{line}: {source[line - 1].strip()}")
    assert not unexplained, f"function-level imports without a '{LAZY_MARK} <reason>' comment:\n" + "\n".join(
        unexplained
    )


def test_the_command_line_imports_no_server_code():
    """The CLI speaks HTTP and websockets only (issue 12): no Django, no Gofer app."""
    offending = []
    for path in (REPO / "cli").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top == "django" or top in RANK:
                    offending.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
    assert not offending, "\n".join(offending)


def test_the_layer_check_catches_an_upward_import(tmp_path):
    """The check itself can fail: an import of runs from pipelines is found."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from runs.models import Run\n    return Run\n")
    assert _imports(sample) == [(2, "runs", True)]
    assert _function_level_imports(sample) == [2]
