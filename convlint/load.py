"""Loading: files and targets -> model factories -> models built on the meta device.

``fixtures/seed.py`` imports the file (inside a package, as part of that package, so
relative imports work) and takes every ``nn.Module`` subclass defined there whose
constructor needs no arguments. ``pkg.module:NAME`` and ``path/file.py:NAME`` name a
class or a zero-argument callable that returns a module.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import keyword
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Callable, Optional

from convlint import sites


@dataclass
class Candidate:
    """Something that builds one model."""

    name: str  # shown in reports: "fixtures/seed.py:ASPP"
    path: str  # the file the model is defined in
    line: int
    factory: Callable
    cls: Optional[type] = None


@dataclass
class Problem:
    """A file or target that could not be loaded, located as precisely as we can."""

    path: str
    line: int
    column: int
    message: str
    model: Optional[str] = None


def relpath(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _error_site(exc: BaseException, path: str) -> tuple[int, int]:
    """The line in ``path`` closest to where ``exc`` was raised."""
    if isinstance(exc, SyntaxError) and exc.filename and os.path.abspath(exc.filename) == os.path.abspath(path):
        return exc.lineno or 1, exc.offset or 1
    line = 1
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename) == os.path.abspath(path):
            line = frame.lineno or line
    return line, 1


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _module_name(path: str) -> tuple[str, str]:
    """(sys.path root, dotted name) for a file, climbing out of packages."""
    directory, filename = os.path.split(os.path.abspath(path))
    parts = [os.path.splitext(filename)[0]]
    if parts[0] == "__init__":
        parts = []
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        directory, package = os.path.split(directory)
        parts.insert(0, package)
    return directory, ".".join(parts)


def import_file(path: str):
    """Import a .py file; a file inside a package is imported as part of it."""
    root, name = _module_name(path)
    if root not in sys.path:
        sys.path.insert(0, root)
    existing = sys.modules.get(name)
    if existing is not None:
        same_file = getattr(existing, "__file__", None) and os.path.abspath(existing.__file__) == os.path.abspath(path)
        if same_file:
            return existing
    stem = os.path.splitext(os.path.basename(path))[0]
    if existing is not None or not stem.isidentifier() or keyword.iskeyword(stem):
        # Another file owns the name (two models/ folders, say), or the file name is no
        # module name (model.v2.py): load it under a private name.
        private = f"_convlint_{abs(hash(os.path.abspath(path))):x}_{''.join(c if c.isalnum() else '_' for c in name)}"
        spec = importlib.util.spec_from_file_location(private, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[private] = module
        try:
            with sites.recording():
                spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[private]
            raise
        return module
    with sites.recording():
        return importlib.import_module(name)


def _needs_no_arguments(obj) -> bool:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in signature.parameters.values()
    )


def _is_model_class(obj, module_name: str) -> bool:
    import torch.nn as nn

    return (
        inspect.isclass(obj)
        and issubclass(obj, nn.Module)
        and obj.__module__ == module_name
        and obj.forward is not nn.Module.forward
        and not inspect.isabstract(obj)
        and _needs_no_arguments(obj)
    )


def _line_of(obj) -> int:
    try:
        return inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return 1


def candidates_in_file(path: str) -> tuple[list[Candidate], list[Problem]]:
    try:
        module = import_file(path)
    except BaseException as exc:  # user code may raise anything, SystemExit included
        if isinstance(exc, KeyboardInterrupt):
            raise
        line, column = _error_site(exc, path)
        return [], [Problem(relpath(path), line, column, f"cannot import {relpath(path)}: {describe(exc)}")]
    found = [
        Candidate(f"{relpath(path)}:{name}", path, _line_of(obj), obj, obj)
        for name, obj in vars(module).items()
        if _is_model_class(obj, module.__name__)
    ]
    return sorted(found, key=lambda c: c.line), []


def candidate_for_target(target: str) -> tuple[list[Candidate], list[Problem]]:
    """``pkg.module:NAME`` or ``path/file.py:NAME``."""
    where, _, attr = target.rpartition(":")
    path = where if where.endswith(".py") else None
    try:
        if path is not None:
            if not os.path.isfile(path):
                return [], [Problem(relpath(path), 1, 1, f"no such file: {path}")]
            module = import_file(path)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            with sites.recording():
                module = importlib.import_module(where)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        at = path or where
        line, column = _error_site(exc, path) if path else (1, 1)
        return [], [Problem(relpath(at), line, column, f"cannot import {at}: {describe(exc)}")]
    obj = module
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        file = path or getattr(module, "__file__", where)
        return [], [Problem(relpath(file), 1, 1, f"{where} has no attribute {attr!r}")]
    file = path or inspect.getsourcefile(module) or where
    if not callable(obj) or not _needs_no_arguments(obj):
        return [], [
            Problem(
                relpath(file),
                _line_of(obj),
                1,
                f"{target} is not a class or a callable that takes no arguments",
                target,
            )
        ]
    return [Candidate(f"{relpath(file)}:{attr}" if path else target, file, _line_of(obj), obj)], []


def build(candidate: Candidate):
    """Build the model with parameters on the meta device, recording construction sites.

    A constructor that needs real data (``.item()``, ``torch.linalg`` on weights) fails
    on meta; it is then built on the CPU and moved to meta.
    """
    import torch
    import torch.nn as nn

    with sites.recording():
        try:
            with torch.device("meta"):
                model = candidate.factory()
        except Exception:
            model = candidate.factory().to("meta")
    if not isinstance(model, nn.Module):
        raise TypeError(f"{candidate.name} returned {type(model).__name__}, not an nn.Module")
    # The model itself was built by convlint, not by a line of the user's: findings on
    # it point at its class instead.
    model.__dict__.pop(sites.ATTR, None)
    return model


def python_files(path: str, exclude: Callable[[str], bool]) -> list[str]:
    """The .py files under a directory (sorted), or the file itself."""
    if os.path.isfile(path):
        return [path]
    found = []
    for directory, subdirs, files in os.walk(path):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and not exclude(os.path.join(directory, d)))
        found.extend(os.path.join(directory, f) for f in sorted(files) if f.endswith(".py"))
    return [f for f in found if not exclude(f)]
