"""``pytest --convlint``: every model a test item, as pytest-mypy and pytest-ruff make
their checks items.

A collected Python file that defines models (the ones ``convlint check`` on that file
checks) gives one item per model, and the ``pyproject.toml`` whose ``[tool.convlint]``
names models gives one item per configured model. An item fails with the findings as
``convlint check`` prints them. So pytest-xdist spreads the models over processes or
hosts (``-n auto``), ``--lf`` checks the failures again, pytest-split shards a model
library over CI runners by the items' durations.

An item's outcome is cached (pytest's cache, ``convlint/`` keys) with the hashes of the
project files its model ran while it was built and analysed, and of the configuration:
while none of them changed, the item gives the same outcome without analysing again.
"""

from __future__ import annotations

import fnmatch
import os
from typing import Optional

import pytest

from convlint.common import VERSION

CACHE = "convlint/"  # pytest cache keys: convlint/<item's node id>


def pytest_addoption(parser) -> None:
    group = parser.getgroup("convlint")
    group.addoption(
        "--convlint",
        action="store_true",
        help="check the models of the collected files and the [tool.convlint] models with convlint, one item each",
    )


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "convlint: a convlint check of one model (pytest --convlint)")


def pytest_collect_file(file_path, parent):
    config = parent.config
    if not config.getoption("convlint"):
        return None
    settings = _settings(config)
    if file_path.name == "pyproject.toml":
        configured = settings.path and os.path.samefile(file_path, settings.path) and settings.models
        return ConfiguredModels.from_parent(parent, path=file_path) if configured else None
    if file_path.suffix != ".py" or _test_module(config, file_path) or _excluded(settings, file_path):
        return None
    from convlint import scan

    path = str(file_path)
    if not scan.needs_import(path) or scan.runs_at_import(path) is not None:
        return None  # no model (not imported), or a script (`convlint check` names it CVL905)
    return ModelFile.from_parent(parent, path=file_path)


def _settings(config):
    """The project's ``[tool.convlint]``, read once a session."""
    settings = getattr(config, "_convlint_settings", None)
    if settings is None:
        from convlint import config as config_mod

        try:
            settings = config_mod.load(start=str(config.rootpath))
        except config_mod.ConfigError as exc:
            raise pytest.UsageError(f"convlint: {exc}") from None
        config._convlint_settings = settings
    return settings


def _test_module(config, file_path) -> bool:
    patterns = [*config.getini("python_files"), "conftest.py"]
    return any(fnmatch.fnmatch(file_path.name, p) for p in patterns)


def _excluded(settings, file_path) -> bool:
    rel = os.path.relpath(file_path, os.path.dirname(settings.path) if settings.path else ".")
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(file_path.name, p) for p in settings.exclude)


class ModelFile(pytest.File):
    """A Python file that defines models: one item per model ``convlint check`` on it
    checks (classes and factories that build with no arguments, blocks of another model
    of the file left out), and one for the file where it does not import."""

    def collect(self):
        from convlint import engine

        result = engine.Result()
        path = str(self.path)
        options = _settings(self.config).options()
        entries = list(engine.built_models([path], options, result))
        by_model: dict = {}
        for finding in result.findings:  # a model that did not build, a file that did not import
            if finding.severity != "info":
                by_model.setdefault(finding.model or "", []).append(finding)
        for name, findings in by_model.items():
            yield Unbuilt.from_parent(self, name=_item_name(name) or self.path.name, findings=findings)
        for candidate, *_ in entries:
            yield ModelItem.from_parent(
                self, name=_item_name(candidate.name), target=f"{path}:{_item_name(candidate.name)}"
            )


class ConfiguredModels(pytest.File):
    """The ``pyproject.toml`` that configures models: one item per ``models`` entry."""

    def collect(self):
        for target in _settings(self.config).targets():
            yield ModelItem.from_parent(self, name=target.target, target=target)


def _item_name(model: str) -> str:
    """``path/net.py:UNet`` -> ``UNet``."""
    return model.rpartition(":")[2] if ":" in model else model


class ConvlintFailure(Exception):
    """A model's findings, as ``convlint check`` prints them."""


class _Item(pytest.Item):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # pytest-lsp's runtest hook (a wrapper) returns without yielding for an item with
        # no ``funcargs``, which pytest reports as an error of the item: none here
        self.funcargs: dict = {}
        self.add_marker("convlint")

    def repr_failure(self, excinfo, style=None):
        if excinfo.errisinstance(ConvlintFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"convlint: {self.name}"


class Unbuilt(_Item):
    """A model that did not build, or a file that did not import: fails with why."""

    def __init__(self, *, findings: list, **kwargs) -> None:
        super().__init__(**kwargs)
        self.findings = findings

    def runtest(self) -> None:
        from convlint import report

        raise ConvlintFailure(report.text(self.findings).rstrip("\n"))


class ModelItem(_Item):
    """One model checked as ``convlint check`` checks it; the outcome cached while the
    files it runs and the configuration are unchanged."""

    def __init__(self, *, target, **kwargs) -> None:
        super().__init__(**kwargs)
        self.target = target

    def runtest(self) -> None:
        said = self._remembered()
        if said is None:
            said = self._check()
        if said:
            raise ConvlintFailure(said)

    def _check(self) -> str:
        """Check the model: the report if it fails (findings and summary, as `convlint
        check` prints them), "" if it passes; the outcome cached with the files it ran."""
        from dataclasses import replace

        from convlint import engine, report, usage
        from convlint.targets import Target

        settings = _settings(self.config)
        target = self.target if isinstance(self.target, Target) else Target(self.target)
        target = replace(target, key=self.nodeid)  # the files its model runs are recorded under it
        files_cache = usage.Cache(str(self.config.rootpath), enabled=False)
        result = engine.check_paths([target], settings.options(), files_cache, jobs=1)
        failing = any(f.severity != "info" for f in result.findings) or result.problems
        said = ""
        if failing:
            summary = report.summary(
                result.findings, result.models, result.files, coverage=result.coverage, skipped=result.skipped
            )
            problems = "".join(f"convlint: error: {p}\n" for p in result.problems)
            said = f"{problems}{report.text(result.findings)}{summary}"
        files = set(result.usage.get(self.nodeid, ())) | ({settings.path} if settings.path else set())
        self._remember(files, said)
        return said

    def _remembered(self) -> Optional[str]:
        cache = getattr(self.config, "cache", None)  # None under -p no:cacheprovider
        if cache is None:
            return None
        from convlint import usage

        entry = cache.get(CACHE + self.nodeid, None)
        if not entry or entry.get("version") != VERSION or not entry.get("files"):
            return None
        if any(usage.file_hash(path) != digest for path, digest in entry["files"].items()):
            return None
        return entry["said"]

    def _remember(self, files: set, said: str) -> None:
        cache = getattr(self.config, "cache", None)
        if cache is None:
            return
        from convlint import usage

        hashes = {path: usage.file_hash(path) for path in sorted(files)}
        cache.set(CACHE + self.nodeid, {"version": VERSION, "files": hashes, "said": said})
