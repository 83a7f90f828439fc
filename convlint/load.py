"""Loading: files and targets -> model factories -> models built on the meta device.

``fixtures/seed.py`` imports the file (inside a package, as part of that package, so
relative imports work; the project root on ``sys.path`` as when the repository runs) and
takes every ``nn.Module`` subclass defined there whose constructor needs no arguments,
and every factory function callable with none (``hubconf.py`` entries too). A class that
needs arguments is not guessed at: it is reported as not checked, with the target line
that would check it. ``pkg.module:NAME`` and ``path/file.py:NAME`` name a class or a
callable; ``path/file.py:UNet(3, 2, bilinear=False)`` calls it with literal arguments.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import importlib.util
import inspect
import keyword
import logging
import os
import sys
import traceback
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from convlint import scan, sites
from convlint.common import describe, freeze_once, relpath

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    """Something that builds one model."""

    name: str  # shown in reports: "fixtures/seed.py:ASPP"
    path: str  # the file the model is defined in
    line: int
    factory: Callable
    cls: Optional[type] = None
    # "class" and "factory" were found in a file; "target" was named by the user, so a
    # factory that returns no module is an error there, not a function to pass over.
    # "function": a function found in a file that may build a model (only building it
    # tells); one that raises or returns no module is passed over with a note.
    kind: str = "target"
    obj: object = None  # the class or function named (what a configured target stands for)


@dataclass
class Problem:
    """A file or target that could not be loaded, located as precisely as we can."""

    path: str
    line: int
    column: int
    message: str
    model: Optional[str] = None
    code: str = "CVL900"  # CVL901 for a target that imports but cannot be called as written


@dataclass
class Unchecked:
    """A model class (or hub entry) in a checked file that convlint did not build, and why."""

    name: str
    path: str
    line: int
    obj: object
    reason: str


@dataclass
class Loaded:
    """What one file or target gave: models to build, problems, models left unbuilt."""

    candidates: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    unchecked: list = field(default_factory=list)


class TargetError(ValueError):
    """A target string that is not ``module:NAME``, ``path.py:NAME`` or a call of one."""


@dataclass
class TargetSpec:
    """A parsed target: where the object lives, its name, and the call to make, if any."""

    where: str  # "pkg.module" or "path/file.py"
    attr: str
    args: tuple = ()
    kwargs: tuple = ()  # ((name, value), ...), in the order written
    called: bool = False

    @property
    def call(self) -> str:
        """The call as shown in reports: ``(3, 2, bilinear=False)``, or "" when not called."""
        if not self.called:
            return ""
        return "(" + ", ".join([repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs]) + ")"

    def factory(self, obj) -> Callable:
        return functools.partial(obj, *self.args, **dict(self.kwargs)) if self.called else obj


def _literal(node: ast.expr, text: str):
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise TargetError(
            f"target {text!r}: `{ast.unparse(node)}` is not a literal (numbers, strings, True/False/None, "
            "tuples, lists and dicts of them); convlint never evaluates code from a target"
        ) from None


def parse_target(text: str, args=None, kwargs=None) -> TargetSpec:
    """``pkg.mod:UNet``, ``path/file.py:UNet`` or either with a call of literal arguments,
    ``UNet(3, 2, bilinear=False)``; ``args``/``kwargs`` come from a configuration table."""
    head, paren, rest = text.partition("(")
    where, colon, attr = head.strip().rpartition(":")
    if not colon or not where or not attr or not all(p.isidentifier() for p in attr.split(".")):
        raise TargetError(f"target {text!r} is not module:NAME or path/file.py:NAME (optionally called: NAME(3, 2))")
    spec = TargetSpec(where, attr)
    if paren:
        try:
            call = ast.parse(f"f({rest}", mode="eval").body
        except SyntaxError as exc:
            raise TargetError(f"target {text!r}: the call does not parse: {exc.msg}") from None
        if not isinstance(call, ast.Call) or any(isinstance(a, ast.Starred) for a in call.args):
            raise TargetError(f"target {text!r}: write the arguments one by one, as in NAME(3, 2, bilinear=False)")
        if any(k.arg is None for k in call.keywords):
            raise TargetError(f"target {text!r}: write the keyword arguments one by one (no **)")
        spec.args = tuple(_literal(a, text) for a in call.args)
        spec.kwargs = tuple((k.arg, _literal(k.value, text)) for k in call.keywords)
        spec.called = True
    if args is not None or kwargs is not None:
        if paren:
            raise TargetError(f"target {text!r}: give the arguments in the target or as args/kwargs, not both")
        spec.args, spec.kwargs, spec.called = tuple(args or ()), tuple((kwargs or {}).items()), True
    return spec


def _error_site(exc: BaseException, path: str) -> tuple[int, int]:
    """The line in ``path`` closest to where ``exc`` was raised."""
    if isinstance(exc, SyntaxError) and exc.filename and os.path.abspath(exc.filename) == os.path.abspath(path):
        return exc.lineno or 1, exc.offset or 1
    line = 1
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename) == os.path.abspath(path):
            line = frame.lineno or line
    return line, 1


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


PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")


def project_root(path: str) -> Optional[str]:
    """The nearest folder at or above ``path``'s with pyproject.toml, setup.py, setup.cfg
    or .git: where the repository's own code is run from."""
    directory = os.path.dirname(os.path.abspath(path))
    while True:
        if any(os.path.exists(os.path.join(directory, m)) for m in PROJECT_MARKERS):
            return directory
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _on_sys_path(path: str, root: str) -> None:
    """The file's own import root first; the project root too, as `python -m` from the
    root has it (a folder without __init__.py importing `model.attention.X` from there)."""
    if root not in sys.path:
        sys.path.insert(0, root)
    project = project_root(path)
    if project is not None and project not in sys.path:
        sys.path.insert(1, project)


def _namespace_name(path: str) -> Optional[tuple[str, str]]:
    """(project root, dotted name) of a file in folders without ``__init__.py`` (namespace
    packages), as ``python -c "import models.net"`` from the project root imports it."""
    project = project_root(path)
    if project is None:
        return None
    relative = os.path.relpath(os.path.splitext(os.path.abspath(path))[0], project).split(os.sep)
    if relative[0] == os.pardir or not all(p.isidentifier() and not keyword.iskeyword(p) for p in relative):
        return None
    return project, ".".join(relative)


@functools.lru_cache(maxsize=None)
def _namespace_folder(folder: str) -> bool:
    """Does a file of this folder (one without ``__init__.py``) import relatively? Then the
    folder is a namespace package and each of its files is imported by its dotted path, so
    that a block and the model importing it share one module."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return False
    return any(n.endswith(".py") and scan.relative_imports(os.path.join(folder, n)) for n in names)


def import_file(path: str):
    """Import a .py file; a file inside a package is imported as part of it, one in a
    folder without ``__init__.py`` that imports relatively by its path from the project
    root (a namespace package)."""
    root, name = _module_name(path)
    if "." not in name and _namespace_folder(os.path.dirname(os.path.abspath(path))):
        root, name = _namespace_name(path) or (root, name)
    _on_sys_path(path, root)
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


def required_arguments(obj) -> Optional[list]:
    """The parameters a call of ``obj`` must be given (None: no signature to read)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [
        p
        for p in signature.parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _needs_no_arguments(obj) -> bool:
    return required_arguments(obj) == []


def _is_model_class(obj, module_name: str) -> bool:
    import torch.nn as nn

    return (
        inspect.isclass(obj)
        and issubclass(obj, nn.Module)
        and obj.__module__ == module_name
        and obj.forward is not nn.Module.forward
        and not inspect.isabstract(obj)
    )


def _line_of(obj) -> int:
    try:
        return inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return 1


def target_form(path: str, name: str) -> str:
    """How a configuration names ``name`` in ``path``: ``pkg.module:NAME`` when the file's
    package imports from the working directory, else ``path/file.py:NAME``."""
    root, dotted = _module_name(path)
    if root == os.getcwd() and dotted and all(p.isidentifier() for p in dotted.split(".")):
        return f"{dotted}:{name}"
    return f"{relpath(path)}:{name}"


def call_template(obj, required: list) -> str:
    """``(n_channels=..., n_classes=...)``: the call a target needs, values left to the user."""
    parts = ["..." if p.kind == p.POSITIONAL_ONLY else f"{p.name}=..." for p in required]
    return "(" + ", ".join(parts) + ")"


def needs_arguments(obj, path: str, name: str, required: list) -> str:
    params = ", ".join(p.name for p in required)
    line = f'models = ["{target_form(path, name)}{call_template(obj, required)}"]'
    return (
        f"its {'constructor' if inspect.isclass(obj) else 'factory'} needs arguments ({params}), "
        f"which convlint does not guess; to check it, add {line} to [tool.convlint] with the values it is built with"
    )


def candidates_in_file(path: str) -> Loaded:
    try:
        module = import_file(path)
    except BaseException as exc:  # user code may raise anything, SystemExit included
        if isinstance(exc, KeyboardInterrupt):
            raise
        line, column = _error_site(exc, path)
        return Loaded(
            problems=[Problem(relpath(path), line, column, f"cannot import {relpath(path)}: {describe(exc)}")]
        )
    loaded = Loaded()
    hub = os.path.basename(path) == "hubconf.py"
    factories = scan.factory_names(path)
    for name, obj in vars(module).items():
        if _is_model_class(obj, module.__name__):
            kind = "class"
        elif inspect.isfunction(obj) and not name.startswith("_") and obj.__module__ == module.__name__:
            if name not in factories and not hub:
                continue
            kind = "factory" if hub else factories[name]
        elif hub and inspect.isfunction(obj) and not name.startswith("_") and _in_project(obj, path):
            kind = "factory"  # hubconf.py's entry points: what it defines or imports from its project
        else:
            continue
        where = _source_file(obj) or path  # an entry point hubconf.py imports is at its own line
        required = required_arguments(obj)
        if required == []:
            loaded.candidates.append(Candidate(f"{relpath(path)}:{name}", where, _line_of(obj), obj, obj, kind, obj))
        elif required and (kind == "class" or hub):
            reason = needs_arguments(obj, path, name, required)
            loaded.unchecked.append(Unchecked(f"{relpath(path)}:{name}", where, _line_of(obj), obj, reason))
    loaded.candidates.sort(key=lambda c: c.line)
    return loaded


def _source_file(obj) -> Optional[str]:
    try:
        return os.path.abspath(inspect.getsourcefile(obj) or "") or None
    except TypeError:
        return None


def _in_project(obj, path: str) -> bool:
    """Is ``obj`` defined in the project ``path`` belongs to (not an installed library)?"""
    source, root = _source_file(obj), project_root(path) or os.path.dirname(os.path.abspath(path))
    parts = (source or "").split(os.sep)
    return bool(source) and source.startswith(root + os.sep) and not {"site-packages", "dist-packages"} & set(parts)


def _import_target(spec: TargetSpec):
    if spec.where.endswith(".py"):
        module = import_file(spec.where)
        return module, spec.where
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    with sites.recording():
        module = importlib.import_module(spec.where)
    return module, None


def candidate_for_target(target: str, args=None, kwargs=None) -> Loaded:
    """``pkg.module:NAME`` or ``path/file.py:NAME``, optionally a call: ``NAME(3, 2)``."""
    try:
        spec = parse_target(target, args, kwargs)
    except TargetError as exc:
        return Loaded(problems=[Problem(relpath(target.partition(":")[0]), 1, 1, str(exc), target)])
    path = spec.where if spec.where.endswith(".py") else None
    if path is not None and not os.path.isfile(path):
        return Loaded(problems=[Problem(relpath(path), 1, 1, f"no such file: {path}")])
    try:
        module, path = _import_target(spec)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        at = path or spec.where
        line, column = _error_site(exc, path) if path else (1, 1)
        return Loaded(problems=[Problem(relpath(at), line, column, f"cannot import {at}: {describe(exc)}")])
    obj = module
    try:
        for part in spec.attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        file = path or getattr(module, "__file__", spec.where)
        return Loaded(problems=[Problem(relpath(file), 1, 1, f"{spec.where} has no attribute {spec.attr!r}")])
    file = path or inspect.getsourcefile(module) or spec.where
    name = (f"{relpath(file)}:{spec.attr}" if path else f"{spec.where}:{spec.attr}") + spec.call
    where = inspect.getsourcefile(obj) if inspect.isclass(obj) or inspect.isfunction(obj) else None
    problem = _call_problem(obj, spec, where or file, name)
    if problem is not None:
        return Loaded(problems=[Problem(relpath(where or file), _line_of(obj), 1, problem, name, "CVL901")])
    line = _line_of(obj)
    if where is None or not os.path.exists(file) or not os.path.samefile(where, file):
        # imported from elsewhere: the target's own file, at the line that imports it
        line = (scan.binding_line(file, spec.attr.partition(".")[0]) if file.endswith(".py") else None) or 1
    return Loaded(candidates=[Candidate(name, file, line, spec.factory(obj), obj=obj)])


def _call_problem(obj, spec: TargetSpec, path: str, name: str) -> Optional[str]:
    """Why ``obj`` cannot be called as the target says, or None."""
    if not callable(obj):
        return f"`{name}` is a {type(obj).__name__}, not a class or a function that builds a model"
    if spec.called:
        try:
            inspect.signature(obj).bind(*spec.args, **dict(spec.kwargs))
        except TypeError as exc:
            return f"`{name}` does not match the signature {spec.attr}{inspect.signature(obj)}: {exc}"
        except ValueError:  # no signature to check against: let the call say
            pass
        return None
    required = required_arguments(obj)
    if required:
        return f"`{name}` cannot be built: " + needs_arguments(obj, path, spec.attr.rpartition(".")[2], required)
    return None


class DownloadRefused(OSError):
    """A model's constructor reached for the network."""


@contextlib.contextmanager
def no_downloads() -> Iterator[None]:
    """Building a model never downloads: a constructor that fetches weights fails at once,
    naming what it fetched, instead of hanging without network (or pulling gigabytes in
    a commit hook). torch.hub's downloader names the URL; any other socket names the host."""
    import socket

    import torch.hub

    def refuse_url(url, *args, **kwargs):
        raise DownloadRefused(f"its constructor tries to download {url}; convlint builds models without network")

    def refuse_host(host, *args, **kwargs):
        target = host[0] if isinstance(host, tuple) else host
        raise DownloadRefused(f"its constructor tries to reach {target}; convlint builds models without network")

    patches = [
        (torch.hub, "download_url_to_file", refuse_url),
        (socket, "getaddrinfo", refuse_host),
        (socket, "create_connection", refuse_host),
        (socket.socket, "connect", lambda self, address, *a: refuse_host(address)),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, replacement in patches:
            setattr(owner, name, replacement)
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


class NotAModel(TypeError):
    """A factory returned something that is not an ``nn.Module``."""


def build(candidate: Candidate):
    """Build the model with parameters on the meta device, recording construction sites.

    A constructor that needs real data (``.item()``, ``torch.linalg`` on weights) fails
    on meta; it is then built on the CPU and moved to meta. A download is refused.
    """
    import torch
    import torch.nn as nn

    freeze_once()
    with sites.recording(), no_downloads():
        on_meta = True
        try:
            with torch.device("meta"):
                model = candidate.factory()
        except DownloadRefused:
            raise
        except Exception as exc:  # a constructor that needs real data: built on the CPU
            log.debug("%s: built on the CPU, on meta its constructor raised %s", candidate.name, describe(exc))
            on_meta = False
        if not on_meta:  # out of the handler: an error here is the only one shown
            model = candidate.factory().to("meta")
    if not isinstance(model, nn.Module):
        raise NotAModel(f"{candidate.name} returned {type(model).__name__}, not an nn.Module")
    # The model itself was built by convlint, not by a line of the user's: findings on
    # it point at its class instead.
    model.__dict__.pop(sites.ATTR, None)
    model.__dict__.pop(sites.CHAIN, None)
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
