"""Every public name is documented: a docstring, and a mention in docs/api.md."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import flowledger as fl

ROOT = Path(__file__).resolve().parents[2]
API_DOC = (ROOT / "docs" / "api.md").read_text()
PUBLIC = [name for name in fl.__all__ if name != "__version__"]


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_is_in_the_api_doc(name: str) -> None:
    assert f"`{name}" in API_DOC, f"{name} is exported but missing from docs/api.md"


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_has_its_own_docstring(name: str) -> None:
    obj = getattr(fl, name)
    doc = obj.__doc__ or ""
    if inspect.isclass(obj):
        own = obj.__dict__.get("__doc__") or ""
        # dataclasses without a docstring get their signature as __doc__
        assert own and not own.startswith(f"{obj.__name__}("), f"{name} has no docstring"
    else:
        assert doc.strip(), f"{name} has no docstring"


def test_ledger_methods_have_docstrings_and_are_documented() -> None:
    for name, member in inspect.getmembers(fl.Ledger, inspect.isfunction):
        if name.startswith("_"):
            continue
        assert (member.__doc__ or "").strip() or name == "close", f"Ledger.{name}"
        assert f"`{name}(" in API_DOC or f"`await {name}(" in API_DOC, f"Ledger.{name}"


def test_the_package_namespace_is_its_public_api() -> None:
    assert "annotations" not in dir(fl)
    assert dir(fl) == sorted(fl.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fl.nope  # noqa: B018


def _documented_modules() -> set[str]:
    """The module paths in docs/development.md's layout tree (two spaces a level)."""
    text = (ROOT / "docs" / "development.md").read_text()
    tree = text.split("## Layout", 1)[1].split("```", 2)[1]
    lines = [line for line in tree.splitlines() if line.strip()]
    assert lines[0].strip() == "src/flowledger/"
    found: set[str] = set()
    folders: list[str] = []
    for line in lines[1:]:
        depth = (len(line) - len(line.lstrip(" "))) // 2 - 1
        name = line.split()[0]
        folders = folders[:depth]
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        else:
            found.add("/".join([*folders, name]))
    return found


def test_every_module_is_in_the_development_layout() -> None:
    package = ROOT / "src" / "flowledger"
    modules = {path.relative_to(package).as_posix() for path in package.rglob("*.py")
               if "versions" not in path.relative_to(package).parts}
    documented = _documented_modules()
    assert not modules - documented, \
        f"missing from docs/development.md's layout: {sorted(modules - documented)}"
    assert not documented - modules, \
        f"listed in docs/development.md's layout but gone: {sorted(documented - modules)}"


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_is_in_the_generated_reference(name: str) -> None:
    """docs/reference/python.md renders each public name from its docstring (mkdocstrings);
    a name left out of it would be missing from the site's API reference."""
    reference = (ROOT / "docs" / "reference" / "python.md").read_text()
    obj = getattr(fl, name)
    target = obj.__name__ if inspect.ismodule(obj) else f"{obj.__module__}.{name}"
    assert f"::: {target}\n" in reference, f"{target} is missing from docs/reference/python.md"
