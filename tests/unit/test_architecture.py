"""Import rules of the code base, checked on the source (ast), not by importing it:
services never import each other, domain packages stay free of infrastructure, and nameko
enters `shared/` through one module only."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES_DIR = ROOT / "services"
SHARED_DIR = ROOT / "shared"
SERVICE_NAMES = sorted(
    p.name for p in SERVICES_DIR.iterdir() if p.is_dir() and (p / "__init__.py").exists()
)
INFRASTRUCTURE = {"nameko", "kombu", "eventlet", "sqlalchemy"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module a source file imports, absolute; `from a import b` yields `a` and `a.b`."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def imports_of(path: Path) -> set[str]:
    return imported_modules(
        path.read_text("utf-8"), module_name(path), is_package=path.name == "__init__.py"
    )


def top_level(module: str) -> str:
    return module.split(".", 1)[0]


def other_services_imported(path: Path, own: str) -> set[str]:
    return {
        m
        for m in imports_of(path)
        if m.split(".")[0] == "services"
        and len(m.split(".")) > 1
        and m.split(".")[1] in SERVICE_NAMES
        and m.split(".")[1] != own
    }


# -- the checker itself -------------------------------------------------------------------------


def test_the_import_reader_sees_absolute_from_and_relative_imports():
    source = (
        "import services.routing.handlers\n"
        "from services import notification\n"
        "from ..reporting.db import events\n"
        "from . import handlers\n"
        "def later():\n"
        "    import nameko.rpc\n"
    )

    found = imported_modules(source, "services.intake.service")

    assert {
        "services.routing.handlers",
        "services.notification",
        "services.reporting.db",
        "services.intake.handlers",
        "nameko.rpc",
    } <= found


def test_the_rules_see_the_whole_code_base():
    assert SERVICE_NAMES == ["intake", "notification", "reporting", "routing"]
    assert all(list((SERVICES_DIR / s / "domain").glob("*.py")) for s in SERVICE_NAMES)
    # The real adapters are seen importing what the rules forbid elsewhere.
    assert "nameko.rpc" in imports_of(SERVICES_DIR / "intake" / "service.py")
    assert any(top_level(m) == "nameko" for m in imports_of(SHARED_DIR / "nameko_ext.py"))


# -- the rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_a_service_never_imports_another_service(service):
    # Only modules inside services/<name>/ are checked: services/cli.py and supervisor.py sit
    # above the services and dispatch to every one of them by design.
    offending = {
        str(path.relative_to(ROOT)): sorted(found)
        for path in sorted((SERVICES_DIR / service).rglob("*.py"))
        if (found := other_services_imported(path, service))
    }

    assert offending == {}


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_a_domain_package_imports_no_infrastructure(service):
    offending = {
        str(path.relative_to(ROOT)): sorted(found)
        for path in sorted((SERVICES_DIR / service / "domain").rglob("*.py"))
        if (found := {m for m in imports_of(path) if top_level(m) in INFRASTRUCTURE})
    }

    assert offending == {}


def test_only_the_nameko_adapter_modules_of_shared_import_nameko():
    importers = sorted(
        str(path.relative_to(ROOT))
        for path in SHARED_DIR.rglob("*.py")
        if any(top_level(m) == "nameko" for m in imports_of(path))
    )

    # the adapters (extensions, entrypoints) and the service container class
    assert importers == ["shared/container.py", "shared/nameko_ext.py"]
