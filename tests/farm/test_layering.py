"""The web UI and the API are two interfaces on the same services: neither imports the other.

What both need (the list filtersets) lives beside the services, in `farm/filters.py`.
"""

import ast
from pathlib import Path

import pytest

FARM = Path(__file__).resolve().parents[2] / "farm"
UI_MODULES = [
    "forms.py",
    "views.py",
    "ui_urls.py",
    *sorted(str(path.relative_to(FARM)) for path in (FARM / "templatetags").glob("*.py")),
]


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


@pytest.mark.parametrize("module", UI_MODULES)
def test_the_web_ui_does_not_import_the_api(module):
    api_imports = {
        name for name in imported_modules(FARM / module) if name.split(".")[:2] == ["farm", "api"]
    }
    assert not api_imports, f"farm/{module} imports {sorted(api_imports)}"


def test_the_shared_filtersets_import_neither_interface():
    interfaces = {"farm.api", "farm.forms", "farm.views"}
    imports = imported_modules(FARM / "filters.py")
    assert not {name for name in imports if any(name.startswith(i) for i in interfaces)}, sorted(
        imports
    )
