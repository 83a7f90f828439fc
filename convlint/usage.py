"""Which project files each configured model runs, so that a pre-commit run (which passes
the changed file names) checks exactly the configured models that a change touches.

While a configured model is built and analysed, a profile hook records the source file of
every Python function called; those inside the project (not in an environment's
site-packages) are the model's files. The map is cached in ``.convlint_cache/usage.json``
under the project root, each file with the hash of its content, as ruff and mypy keep their
caches: an entry whose files all hash as recorded still holds, so the next run decides
without importing anything; an entry with a changed file is stale, and its model is built
and recorded again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

CACHE_DIR = ".convlint_cache"
VERSION = 2
KEPT = 8  # records kept per model


def file_hash(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None


def target_key(target: str, args, kwargs, input_shapes) -> str:
    """A configured model's identity: the same entry written the same way."""
    return json.dumps([target, list(args or ()), dict(kwargs or {}), [list(s) for s in input_shapes]], default=repr)


class Cache:
    """The file map of a project, read from and written to its cache folder."""

    def __init__(self, root: str, enabled: bool = True) -> None:
        self.root = os.path.abspath(root)
        self.path = os.path.join(self.root, CACHE_DIR, "usage.json")
        self.enabled = enabled
        self.entries: dict = {}
        self.changed = False
        if enabled:
            try:
                with open(self.path, encoding="utf-8") as fh:
                    data = json.load(fh)
                if data.get("version") == VERSION:
                    self.entries = data.get("models", {})
            except (OSError, ValueError):
                pass  # no cache yet, or a damaged one: every model is recorded anew

    def files(self, key: str) -> Optional[set[str]]:
        """The absolute paths a model ran, from a record whose files are all as they were
        recorded; None when no record of the model holds."""
        hashes: dict = {}
        for record in self.entries.get(key, ()):
            paths = {os.path.join(self.root, rel): digest for rel, digest in record.items()}
            if all(hashes.setdefault(p, file_hash(p)) == digest for p, digest in paths.items()):
                return set(paths)
        return None

    def store(self, key: str, files: Iterable[str]) -> None:
        """Record the files a model ran, newest first. A few earlier records are kept: a
        change tried and reverted (a commit the hook refused) finds its record again."""
        record = {os.path.relpath(f, self.root): file_hash(f) for f in sorted(files)}
        records = self.entries.get(key, [])
        if records[:1] != [record]:
            self.entries[key] = [record, *[r for r in records if r != record]][:KEPT]
            self.changed = True

    def save(self) -> None:
        if not (self.enabled and self.changed):
            return
        try:
            cache_folder(self.root)
            temporary = f"{self.path}.{os.getpid()}.tmp"
            with open(temporary, "w", encoding="utf-8") as fh:
                json.dump({"version": VERSION, "models": self.entries}, fh, indent=1, sort_keys=True)
            os.replace(temporary, self.path)  # a reader never sees half a file
        except OSError:
            pass  # a read-only checkout: the next run records again


def cache_folder(root: str) -> str:
    """The project's cache folder, made if missing, with a ``.gitignore`` of its own (as
    ruff's cache: never committed by accident). Raises OSError on a read-only checkout."""
    folder = os.path.join(os.path.abspath(root), CACHE_DIR)
    os.makedirs(folder, exist_ok=True)
    ignore = os.path.join(folder, ".gitignore")
    if not os.path.exists(ignore):
        with open(ignore, "w", encoding="utf-8") as fh:
            fh.write("# Automatically created by convlint.\n*\n")
    return folder


def project_files(paths: Iterable[str], root: str) -> set[str]:
    """The recorded files that belong to the project: under its root, not installed."""
    root = os.path.abspath(root) + os.sep
    found = set()
    for path in paths:
        if path.startswith("<"):
            continue
        path = os.path.abspath(path)
        parts = path.split(os.sep)
        if path.startswith(root) and "site-packages" not in parts and "dist-packages" not in parts:
            if os.path.isfile(path):
                found.add(path)
    return found


@contextlib.contextmanager
def recording(into: set) -> Iterator[None]:
    """Add to ``into`` the source file of every Python function called inside the block."""
    previous = sys.getprofile()

    def profile(frame, event, arg):
        if event == "call":
            into.add(frame.f_code.co_filename)
        if previous is not None:
            previous(frame, event, arg)

    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(previous)


@dataclass(frozen=True)
class Given:
    """The paths a run was given, files and folders: a file is in them if it is one of the
    files or lies under one of the folders (``convlint check .`` gives the project)."""

    files: frozenset
    folders: tuple

    @classmethod
    def of(cls, paths: Iterable[str]) -> "Given":
        absolute = [os.path.abspath(p) for p in paths]
        return cls(frozenset(p for p in absolute if os.path.isfile(p)), tuple(p for p in absolute if os.path.isdir(p)))

    def __contains__(self, path: str) -> bool:
        return path in self.files or any(path.startswith(folder.rstrip(os.sep) + os.sep) for folder in self.folders)

    def any_of(self, paths: Iterable[str]) -> bool:
        return any(path in self for path in paths)


def touched(configured: list, given: Iterable[str], cache: Cache) -> tuple[list, set]:
    """The configured models (``engine.Target``s) to check for these paths: those whose
    recorded files include one of them (or lie in a folder given), and those with no valid
    record (built, recorded, and reported only if they run one). Also the files that the
    valid records say the other models run."""
    from dataclasses import replace

    changed = Given.of(given)
    chosen, others = [], set()
    for target in configured:
        key = target_key(target.target, target.args, target.kwargs, target.input_shapes)
        files = cache.files(key)
        if files is None or changed.any_of(files):
            chosen.append(replace(target, only_if_uses=changed, key=key))
        else:
            others |= files
    return chosen, others
