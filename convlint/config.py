"""``[tool.convlint]`` in the nearest ``pyproject.toml``.

As with ruff, the nearest ``pyproject.toml`` (from the working directory upward) that
has a ``[tool.convlint]`` table is used. Unknown keys and wrong types are errors that
name the key, never silently ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional


class ConfigError(Exception):
    pass


@dataclass
class ModelEntry:
    target: str
    input_shapes: tuple = ()
    args: Optional[tuple] = None
    kwargs: Optional[tuple] = None  # ((name, value), ...)


@dataclass
class Config:
    path: Optional[str] = None
    same: tuple[str, ...] = ()
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    models: tuple[ModelEntry, ...] = ()
    input_shapes: tuple = ()
    run_every_op: bool = False
    extra: dict = field(default_factory=dict)

    def options(
        self,
        *,
        input_shapes: tuple = (),
        same: tuple = (),
        select: Optional[tuple] = None,
        ignore: Optional[tuple] = None,
        run_every_op: bool = False,
    ):
        """The run's ``Options``: this configuration, with the command line's on top (its
        shapes and select/ignore replace the configuration's, its same globs add to them,
        its --run-every-op turns the mode on)."""
        from convlint.options import Options

        return Options(
            input_shapes=tuple(input_shapes) or self.input_shapes,
            same=self.same + tuple(same),
            select=self.select if select is None else tuple(select),
            ignore=self.ignore if ignore is None else tuple(ignore),
            exclude=self.exclude,
            run_every_op=run_every_op or self.run_every_op,
        )

    def targets(self) -> list:
        """The configured models (``models = [...]``), each a ``Target`` with its own shapes."""
        from convlint.targets import Target

        return [Target(e.target, e.input_shapes, e.args, e.kwargs) for e in self.models]


def _strings(key: str, value) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"[tool.convlint] {key} must be a list of strings, got {value!r}")
    return tuple(value)


def _bool(key: str, value) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"[tool.convlint] {key} must be true or false, got {value!r}")
    return value


_DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")


def parse_shape(text) -> tuple[int, ...]:
    """``"1,3,224,224"`` or ``[1, 3, 224, 224]`` -> (1, 3, 224, 224); ``"1:int64"``: an
    integer input (class labels, timesteps, token ids) of shape (1,)."""
    from convlint.options import Shape

    if isinstance(text, str) and ":" in text:
        sizes, dtype = text.rsplit(":", 1)
        if dtype not in _DTYPES:
            raise ConfigError(f"input shape {text!r}: unknown dtype {dtype!r} (known: {', '.join(_DTYPES)})")
        return Shape(parse_shape(sizes), dtype)
    if isinstance(text, str):
        parts = text.split(",")
        try:
            shape = tuple(int(p) for p in parts)
        except ValueError:
            raise ConfigError(f"input shape {text!r} is not a list of integers like 1,3,224,224") from None
    elif isinstance(text, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in text):
        shape = tuple(text)
    else:
        raise ConfigError(f"input shape {text!r} is not a list of integers like [1, 3, 224, 224]")
    if not shape or any(s <= 0 for s in shape):
        raise ConfigError(f"input shape {text!r} must have positive sizes")
    return Shape(shape)


def _shapes(key: str, value) -> tuple:
    if isinstance(value, list) and value and all(isinstance(v, (list, str)) for v in value):
        return tuple(parse_shape(v) for v in value)
    return (parse_shape(value),)


def _models(value) -> tuple[ModelEntry, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"[tool.convlint] models must be a list, got {value!r}")
    from convlint.load import TargetError, parse_target

    entries = []
    for item in value:
        if isinstance(item, str):
            entry = ModelEntry(item)
        elif isinstance(item, dict):
            unknown = set(item) - {"target", "input-shape", "args", "kwargs"}
            if unknown:
                raise ConfigError(f"[tool.convlint] models: unknown key {sorted(unknown)[0]!r}")
            if not isinstance(item.get("target"), str):
                raise ConfigError('[tool.convlint] models: each entry needs target = "module:Name"')
            if not isinstance(item.get("args", []), list):
                raise ConfigError(f"[tool.convlint] models: args must be a list, got {item['args']!r}")
            if not isinstance(item.get("kwargs", {}), dict):
                raise ConfigError(f"[tool.convlint] models: kwargs must be a table, got {item['kwargs']!r}")
            shapes = _shapes("models.input-shape", item["input-shape"]) if "input-shape" in item else ()
            args = tuple(item["args"]) if "args" in item else None
            kwargs = tuple(item["kwargs"].items()) if "kwargs" in item else None
            entry = ModelEntry(item["target"], shapes, args, kwargs)
        else:
            raise ConfigError(f"[tool.convlint] models: entry {item!r} is not a string or a table")
        try:  # a target that cannot parse is the configuration's error, said before any import
            parse_target(entry.target, entry.args, entry.kwargs and dict(entry.kwargs))
        except TargetError as exc:
            raise ConfigError(f"[tool.convlint] models: {exc}") from None
        entries.append(entry)
    return tuple(entries)


_KEYS = {
    "same": lambda v: ("same", _strings("same", v)),
    "select": lambda v: ("select", _strings("select", v)),
    "ignore": lambda v: ("ignore", _strings("ignore", v)),
    "exclude": lambda v: ("exclude", _strings("exclude", v)),
    "models": lambda v: ("models", _models(v)),
    "input-shape": lambda v: ("input_shapes", _shapes("input-shape", v)),
    "run-every-op": lambda v: ("run_every_op", _bool("run-every-op", v)),
}


def find_pyproject(start: str) -> Optional[str]:
    import tomllib

    directory = os.path.abspath(start)
    while True:
        candidate = os.path.join(directory, "pyproject.toml")
        if os.path.isfile(candidate):
            try:
                with open(candidate, "rb") as fh:
                    data = tomllib.load(fh)
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"{candidate}: {exc}") from None
            if "convlint" in data.get("tool", {}):
                return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def load(path: Optional[str] = None, start: str = ".") -> Config:
    """Read ``[tool.convlint]`` from ``path`` or the nearest pyproject.toml."""
    import tomllib

    path = path or find_pyproject(start)
    if path is None:
        return Config()
    try:
        with open(path, "rb") as fh:
            table = tomllib.load(fh).get("tool", {}).get("convlint", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    config = Config(path=path)
    for key, value in table.items():
        if key not in _KEYS:
            raise ConfigError(f"{path}: unknown key [tool.convlint] {key!r} (known: {', '.join(sorted(_KEYS))})")
        attr, parsed = _KEYS[key](value)
        setattr(config, attr, parsed)
    return config
