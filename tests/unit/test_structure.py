"""The shape of the code: no import cycles, no use of another module's private names,
no module over 600 lines. Read from the source (AST), so nothing is imported."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowledger import errors
from flowledger.cli.app import EXIT_CODES
from flowledger.http.app import STATUS

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "flowledger"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(path: Path) -> Iterator[tuple[str, list[str], ast.AST]]:
    """(imported module, names taken from it, node) for every runtime import of
    flowledger code in ``path`` (at any depth; not those under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target == "flowledger" or target.startswith("flowledger."):
                names = [alias.name for alias in node.names]
                # `from . import x` imports the submodule x
                submodules = [f"{target}.{n}" for n in names if (PACKAGE.parent / (
                    f"{target}.{n}".replace(".", "/"))).with_suffix(".py").exists() or (
                    PACKAGE.parent / f"{target}.{n}".replace(".", "/")).is_dir()]
                others = [n for n in names if f"{target}.{n}" not in submodules]
                if others or not submodules:  # `from . import sibling` needs only it
                    yield target, others, node
                for sub in submodules:
                    yield sub, [], node
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("flowledger"):
                    yield alias.name, [], node


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {module_name(p): set() for p in MODULES}
    for path in MODULES:
        for target, _, _ in imports(path):
            # importing a.b.c runs a and a.b first: only the module itself is an edge
            if target in edges and target != module_name(path):
                edges[module_name(path)].add(target)
    return edges


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components: every one must be a single module."""
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt == "flowledger":
                continue  # the package's own __init__ imports nothing eagerly but names
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert cycles == [], f"import cycles: {cycles}"


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_no_module_uses_another_modules_private_names(path: Path) -> None:
    for target, names, node in imports(path):
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private, (f"{module_name(path)}:{getattr(node, 'lineno', '?')} imports "
                             f"{private} from {target}")


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_modules_are_small_enough_to_read_in_one_sitting(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= 600, f"{module_name(path)} has {lines} lines"


# Names with a leading underscore that are public by their libraries' own conventions.
LIBRARY_NAMES = {"_mapping", "_asdict", "_fields", "_replace", "_is_coroutine"}


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_no_module_reaches_into_another_objects_private_attributes(path: Path) -> None:
    """``obj._name`` is for an object's own class (``self._name``, ``cls._name``)."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__") or name in LIBRARY_NAMES:
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        if isinstance(owner, ast.Call) and ast.unparse(owner.func) == "super":
            continue
        found.append(f"line {node.lineno}: {ast.unparse(node)}")
    assert not found, f"{module_name(path)}: {found}"


# SQL is written in store/statements/ (and the tables in schema.py, the dialect hooks in
# dialects.py, the schema version and scripts in migrate.py and migrations/); the rest of
# store/ only executes what those build.
STORE = PACKAGE / "store"
SQL_HOMES = {"statements", "schema.py", "dialects.py", "migrate.py", "migrations"}
STATEMENT_BUILDERS = {"select", "insert", "update", "delete", "text"}
STORE_MODULES = sorted(p for p in STORE.rglob("*.py")
                       if p.relative_to(STORE).parts[0] not in SQL_HOMES)


def statements_built(source: str) -> list[str]:
    """Calls of SQLAlchemy's statement constructors in ``source``: ``select(...)`` and the
    like imported from any sqlalchemy module (under any name), ``sa.select(...)`` on an
    imported sqlalchemy module, and ``runs.insert()`` on a table from the store's schema."""
    tree = ast.parse(source)
    functions: dict[str, str] = {}  # local name -> constructor
    modules: set[str] = set()  # local names of sqlalchemy modules, and of schema tables
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.asname or alias.name.split(".")[0] for alias in node.names
                           if alias.name.split(".")[0] == "sqlalchemy")
        elif isinstance(node, ast.ImportFrom):
            source_module = node.module or ""
            if source_module.split(".")[0] == "sqlalchemy":
                for alias in node.names:
                    if alias.name in STATEMENT_BUILDERS:
                        functions[alias.asname or alias.name] = alias.name
                    else:  # perhaps a submodule: from sqlalchemy import sql
                        modules.add(alias.asname or alias.name)
            elif source_module.endswith("schema") or any(
                    alias.name == "schema" for alias in node.names):
                modules.update(alias.asname or alias.name for alias in node.names)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in functions:
            found.append(f"line {node.lineno}: {func.id}(")
        elif isinstance(func, ast.Attribute) and func.attr in STATEMENT_BUILDERS:
            root = func.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in modules:
                found.append(f"line {node.lineno}: {ast.unparse(func)}(")
    return found


def test_statements_built_finds_every_spelling() -> None:
    source = """
import sqlalchemy as sa
from sqlalchemy import select, text as sql_text
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy import sql
from .schema import runs
select(t)
sql_text("SELECT 1")
insert(t)
sa.update(t)
sql.expression.delete(t)
runs.insert()
conn.execute(query.where(x))
"""
    assert {f.split(":")[0] for f in statements_built(source)} == {
        "line 7", "line 8", "line 9", "line 10", "line 11", "line 12"}


@pytest.mark.parametrize("path", STORE_MODULES,
                         ids=[module_name(p) for p in STORE_MODULES])
def test_store_sql_is_written_in_the_statements_package(path: Path) -> None:
    found = statements_built(path.read_text())
    assert not found, (f"{module_name(path)} builds SQL statements {found}: move them to "
                       "flowledger/store/statements/ and execute what they return")


def test_every_error_category_has_an_answer_on_every_interface() -> None:
    """The category is declared once, on the error; the CLI and HTTP API derive theirs."""

    def subclasses(kind: type[errors.FlowledgerError]) -> list[type[errors.FlowledgerError]]:
        found = [kind]
        for child in kind.__subclasses__():
            found += subclasses(child)
        return found

    found = {cls.category for cls in subclasses(errors.FlowledgerError)}
    assert found <= STATUS.keys(), found - STATUS.keys()
    lookups = {cls for cls in subclasses(errors.FlowledgerError) if issubclass(cls, LookupError)}
    assert {cls.category for cls in lookups - {errors.AmbiguousRunId}} == {"not_found"}
    assert {c for c in found if c not in EXIT_CODES} <= {
        "failed", "conflict", "store_full", "store_unavailable", "store_error"}
