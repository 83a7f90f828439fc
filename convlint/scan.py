"""The fast path: which files can define a model, decided without importing anything.

A pre-commit hook is handed every changed Python file; most define no model. A file is
imported only if it has a class whose bases could make it an ``nn.Module`` (anything
but plain Python bases such as ``object``, exceptions, enums, ``NamedTuple``), a model
factory (below), or is a ``hubconf.py``, or if it cannot be parsed (so the import
reports the error). ``# convlint: skip-file`` skips a
file outright. When no file needs importing, torch is never imported.
"""

from __future__ import annotations

import ast
import builtins
import os
from typing import Optional

from convlint import comments

_PLAIN_BASES = {
    "object",
    "Enum",
    "IntEnum",
    "StrEnum",
    "Flag",
    "IntFlag",
    "NamedTuple",
    "TypedDict",
    "Protocol",
    "Generic",
    "ABC",
    "dict",
    "list",
    "tuple",
    "set",
    "str",
    "int",
    "float",
    "Exception",
    "BaseException",
}


def _plain(base: ast.expr) -> bool:
    """A base that cannot make a class an nn.Module."""
    if isinstance(base, ast.Subscript):  # Generic[T], Protocol[T], dict[str, int]
        base = base.value
    name = base.attr if isinstance(base, ast.Attribute) else base.id if isinstance(base, ast.Name) else None
    if name is None:
        return False
    builtin = getattr(builtins, name, None)
    if isinstance(builtin, type) and issubclass(builtin, BaseException):
        return True
    return name in _PLAIN_BASES


# Calls that make a function a script (training, evaluation, a command line), which
# convlint must not run, however it returns a model.
_SCRIPT_CALLS = {"backward", "zero_grad", "parse_args", "DataLoader", "open", "input", "fit", "save", "exit", "run"}
_SCRIPT_NAMES = ("main", "train", "test", "run", "demo", "cli", "fit", "benchmark", "profile")


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _camel(name: str) -> bool:
    """A class name by convention (``UNet``, ``DRN``, ``Sequential``)."""
    return name[:1].isupper()


def _is_factory(fn: ast.FunctionDef) -> Optional[str]:
    """Does a module-level function build a model when called with no arguments? Public,
    every parameter defaulted, returns a call or a name, and does nothing a script does
    (``backward``, ``DataLoader``, ``parse_args``...). ``"factory"`` when it calls a class
    (capitalized: the model, ``nn.Sequential``) or passes one on (``_resnet(BasicBlock,
    ...)``); ``"function"`` when only building it can tell (``return _load_model(...)``);
    None when it is not one."""
    if fn.name.startswith("_") or fn.name.lower().startswith(_SCRIPT_NAMES):
        return None
    a = fn.args
    if len(a.defaults) < len(a.posonlyargs) + len(a.args) or any(d is None for d in a.kw_defaults):
        return None
    nodes = list(ast.walk(fn))
    returns = [n.value for n in nodes if isinstance(n, ast.Return) and isinstance(n.value, (ast.Call, ast.Name))]
    calls = [n for n in nodes if isinstance(n, ast.Call)]
    if not returns or any(_callee(c) in _SCRIPT_CALLS for c in calls):
        return None
    passes_class = any(
        isinstance(arg, ast.Name) and _camel(arg.id) for r in returns if isinstance(r, ast.Call) for arg in r.args
    )
    return "factory" if passes_class or any(_camel(_callee(c)) for c in calls) else "function"


# What a script does at its top level and a model file does not: train, evaluate, parse
# its command line, move to a device, call its entry point (``main()``). Reading a file
# (a config) and registering or printing are what model files do too.
_TOP_SCRIPT_CALLS = (_SCRIPT_CALLS - {"open"}) | {"step", "cuda", "system", "call", "check_output", "spawn"}


def _runs(node: ast.AST) -> Optional[ast.AST]:
    """The first call in a top-level statement that makes the module a script when it is
    imported (``train(model)``, ``args = parser.parse_args()``, ``loss.backward()`` in a
    loop); None when it only defines and sets up. Function and class bodies do not run
    on import, nor does ``if __name__ == "__main__":``."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        return (
            next((r for r in map(_runs, node.decorator_list) if r is not None), None)
            if not isinstance(node, ast.Lambda)
            else None
        )
    if isinstance(node, ast.ClassDef):
        return next((r for r in map(_runs, [*node.decorator_list, *node.body]) if r is not None), None)
    if isinstance(node, ast.If) and _is_main_guard(node.test):
        return next((r for r in map(_runs, node.orelse) if r is not None), None)
    if isinstance(node, ast.Call):
        callee = _callee(node)
        if callee in _TOP_SCRIPT_CALLS or callee.lower().startswith(_SCRIPT_NAMES):
            return node
    return next((r for r in map(_runs, ast.iter_child_nodes(node)) if r is not None), None)


def _is_main_guard(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def runs_at_import(path: str) -> Optional[tuple[int, int, str]]:
    """(line, column, source line) of the first call in ``path`` that makes it a script
    when it is imported (``_runs``); None when importing it only defines."""
    tree = _tree(path)
    found = next((r for r in map(_runs, tree.body) if r is not None), None) if tree is not None else None
    if found is None:
        return None
    with open(path, encoding="utf-8", errors="replace") as fh:
        text = fh.read().splitlines()[found.lineno - 1].strip()
    return found.lineno, found.col_offset + 1, text


def model_class_name(path: str) -> Optional[str]:
    """The first class of ``path`` whose bases could make it an ``nn.Module``."""
    tree = _tree(path)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)] if tree is not None else []
    return next((c.name for c in classes if c.bases and not all(_plain(b) for b in c.bases)), None)


def _tree(path: str) -> Optional[ast.Module]:
    try:
        with open(path, "rb") as fh:
            return ast.parse(fh.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return None


def factory_names(path: str) -> dict[str, str]:
    """The module-level functions of ``path`` that may build a model with no arguments:
    name -> ``"factory"`` or ``"function"`` (see ``_is_factory``)."""
    tree = _tree(path)
    if tree is None:
        return {}
    found = {n.name: _is_factory(n) for n in tree.body if isinstance(n, ast.FunctionDef)}
    return {name: kind for name, kind in found.items() if kind is not None}


def binding_line(path: str, name: str) -> Optional[int]:
    """The line of the last top-level statement of ``path`` that binds ``name`` (an
    import, a def, a class, an assignment): where a target naming an imported model is."""
    tree = _tree(path)
    found = None
    for node in tree.body if tree is not None else []:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound = {(a.asname or a.name).partition(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound = {node.name}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        else:
            continue
        if name in bound:
            found = node.lineno
    return found


def relative_imports(path: str) -> bool:
    """Does ``path`` import relatively (``from .layers import Block``)?"""
    tree = _tree(path)
    return tree is not None and any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree))


def needs_import(path: str) -> bool:
    """Can ``path`` define a model? (True when unsure.)"""
    if comments.skip_file(path):
        return False
    tree = _tree(path)
    if tree is None or os.path.basename(path) == "hubconf.py":
        return True  # let the import say what is wrong; a hub lists its entry points
    return any(
        isinstance(node, ast.ClassDef) and node.bases and not all(_plain(b) for b in node.bases)
        for node in ast.walk(tree)
    ) or any(isinstance(n, ast.FunctionDef) and _is_factory(n) for n in tree.body)
