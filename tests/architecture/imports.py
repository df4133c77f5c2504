"""Who may import whom (ARCHITECTURE.md), checked on the source by AST, never by importing it.

    rule = Rule("checks", forbidden=("pytest", "drillbook", ...))
    violations(source, rule, module="checks.http")   # -> ["checks/http.py:3: imports pytest: ..."]

An import is every `import x` and `from x import y` anywhere in a module (also
under `if TYPE_CHECKING:` or inside a function), relative imports resolved
against the module's package, plus `importlib.import_module("x")` and
`__import__("x")` with a literal name.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Import:
    """One imported module, fully qualified (`checks._policy`), and the names taken from it."""

    module: str
    line: int
    names: tuple[str, ...] = ()


def imports(source: str, *, module: str = "", is_package: bool = False) -> Iterator[Import]:
    """Every import of `source`, the code of `module` (dotted; used to resolve relative imports)."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                base = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            yield Import(name, node.lineno, tuple(alias.name for alias in node.names))
        elif isinstance(node, ast.Call) and node.args and _is_dynamic_import(node.func):
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield Import(first.value, node.lineno)


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in {"__import__", "import_module"}
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def _root(module: str) -> str:
    return module.split(".")[0]


def _private(module: str, names: tuple[str, ...]) -> bool:
    """`checks._policy`, or `from checks import _x`: reaching past a package's public API."""
    return any(part.startswith("_") for part in module.split(".")[1:]) or any(
        n.startswith("_") for n in names
    )


@dataclass(frozen=True, slots=True)
class Rule:
    """The import rule of one part of the repository.

    `forbidden`: top-level packages it must never import. `allowed`, when given:
    the only top-level packages it may import besides the standard library.
    `public_only`: packages it may use only through their public API.
    """

    name: str
    forbidden: tuple[str, ...] = ()
    allowed: tuple[str, ...] | None = None
    public_only: tuple[str, ...] = ()
    stdlib: bool = True
    reasons: dict[str, str] = field(default_factory=dict)

    def check(self, found: Import) -> str | None:
        root = _root(found.module)
        if root in self.forbidden:
            why = self.reasons.get(root, "ARCHITECTURE.md forbids it")
            return f"imports {found.module}: {self.name} never imports {root} ({why})"
        if root in self.public_only and root != self.name and _private(found.module, found.names):
            taken = ", ".join(n for n in found.names if n.startswith("_")) or found.module
            return f"imports {taken} from {root}: {self.name} uses only the public API of {root}"
        listed = self.allowed is None or root in self.allowed or root == self.name
        if not listed and not (self.stdlib and root in sys.stdlib_module_names):
            return (
                f"imports {found.module}: {self.name} may import only "
                f"{'the standard library, ' if self.stdlib else ''}{', '.join(self.allowed or ())}"
            )
        return None


def violations(
    source: str, rule: Rule, *, path: str, module: str = "", is_package: bool = False
) -> list[str]:
    """`path:line: message` for every import of `source` that breaks `rule`."""
    found = []
    for item in imports(source, module=module, is_package=is_package):
        message = rule.check(item)
        if message:
            found.append(f"{path}:{item.line}: {message}")
    return found
