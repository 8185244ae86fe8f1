"""The shape every service keeps (issue 15), checked on the source: thin routes, handlers keyed
by contract class, use cases without SQL, no service importing another."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["referral", "meeting", "followup", "metrics"]
WITH_WORKSPACE = [*SERVICES, "workspace"]  # the workspace has routes but no domain (it holds no rules)
ROUTE_DECORATORS = {"get", "post", "put", "patch", "delete", "api_route"}
MAX_ROUTE_LINES = 30


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _service_modules(service: str) -> list[Path]:
    return sorted((ROOT / "services" / service).glob("*.py"))


def test_every_route_is_at_most_30_lines_and_module_level():
    too_long, nested = [], []
    for service in WITH_WORKSPACE:
        for path in _service_modules(service):
            tree = _tree(path)
            top_level = set(map(id, tree.body))
            for node in ast.walk(tree):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                routes = [
                    d
                    for d in node.decorator_list
                    if isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr in ROUTE_DECORATORS
                ]
                if not routes:
                    continue
                first = min([d.lineno for d in node.decorator_list] + [node.lineno])
                lines = node.end_lineno - first + 1  # the route: its decorator and its function
                if lines > MAX_ROUTE_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.name} ({lines} lines)")
                if id(node) not in top_level:
                    nested.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert not too_long, f"routes over {MAX_ROUTE_LINES} lines: {too_long}"
    assert not nested, f"routes defined inside a function (use a module-level APIRouter): {nested}"


def test_no_dispatch_by_event_name_strings():
    """A table keyed by ``SomeContract.name`` (or by string literals of event names) hides which
    handler an event reaches; handlers are keyed by contract class (``HandlerTable``)."""
    offenders = []
    for service in SERVICES:
        for path in _service_modules(service):
            for node in ast.walk(_tree(path)):
                if isinstance(node, ast.Dict):
                    keys = [k for k in node.keys if k is not None]
                    if keys and all(isinstance(k, ast.Attribute) and k.attr == "name" for k in keys):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"dicts keyed by contract names: {offenders}"


def test_no_service_imports_another():
    offenders = []
    for service in WITH_WORKSPACE:
        for path in (ROOT / "services" / service).rglob("*.py"):
            for node in ast.walk(_tree(path)):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("services."):
                    other = node.module.split(".")[1]
                    if other != service:
                        offenders.append(f"{path.relative_to(ROOT)} imports {node.module}")
    assert not offenders, offenders


def test_domain_modules_do_no_io():
    forbidden = {"asyncpg", "aio_pika", "faststream", "httpx", "fastapi"}
    offenders = []
    for service in SERVICES:
        for node in ast.walk(_tree(ROOT / "services" / service / "domain.py")):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{service}/domain.py imports {n}" for n in names if n.split(".")[0] in forbidden]
    assert not offenders, offenders


def test_each_services_migrations_are_numbered_once():
    """Two branches that each add a migration numbered 003 merge without a conflict in git; the
    service would refuse to start. Caught here instead."""
    from pathlib import Path

    from shared.platform.db import SHARED_MIGRATIONS, migration_files

    root = Path(__file__).resolve().parents[2]
    directories = [SHARED_MIGRATIONS, *sorted(root.glob("services/*/migrations"))]
    assert len(directories) >= 5
    for directory in directories:
        versions = [version for version, _ in migration_files(directory)]  # raises on a shared number
        assert versions == list(range(1, len(versions) + 1)), f"{directory}: numbered 1, 2, 3 … without a gap"
