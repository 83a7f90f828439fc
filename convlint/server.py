"""``convlint server``: the Language Server Protocol over stdio (pygls).

On open and on save, a Python file is checked as the pre-commit hook checks it: the models
it defines, and every configured model whose construction or ``forward`` ran code in it
(the file map of ``convlint.usage``). Each check runs in a child forked from this warm
process (``convlint.worker``): torch and the rules are imported once, the user's code anew
every time. Findings become diagnostics on the files they are in.
"""

from __future__ import annotations

import asyncio
import os
from typing import Optional

from convlint import __version__

SEVERITIES = {"error": 1, "warning": 2, "info": 3}  # lsprotocol's DiagnosticSeverity values


def diagnostic(finding: dict):
    """A finding (``Finding.to_dict()``) as an LSP diagnostic: 0-based lines and columns."""
    from lsprotocol import types

    start = types.Position(line=finding["line"] - 1, character=finding["column"] - 1)
    end = types.Position(line=finding["end_line"] - 1, character=finding["end_column"] - 1)
    related = [
        types.DiagnosticRelatedInformation(
            location=types.Location(
                uri=_uri(r["path"]),
                range=types.Range(
                    start=types.Position(line=r["line"] - 1, character=r["column"] - 1),
                    end=types.Position(line=r["end_line"] - 1, character=r["end_column"] - 1),
                ),
            ),
            message=r["message"],
        )
        for r in finding.get("related") or ()
    ]
    return types.Diagnostic(
        range=types.Range(start=start, end=end),
        message=finding["message"],
        severity=types.DiagnosticSeverity(SEVERITIES.get(finding["severity"], 1)),
        code=finding["code"],
        source="convlint",
        related_information=related or None,
    )


def _uri(path: str) -> str:
    from pygls.uris import from_fs_path

    return from_fs_path(os.path.abspath(path))


class Checker:
    """The server's state: the workspace root, its configuration, what each check found."""

    def __init__(self) -> None:
        self.root: Optional[str] = None
        self.published: dict[str, set] = {}  # the file a check ran for -> uris it published to

    def options_and_models(self):
        from convlint import config as config_mod
        from convlint import engine

        config = config_mod.load(start=self.root or ".")
        options = engine.Options(
            input_shapes=config.input_shapes,
            same=config.same,
            select=config.select,
            ignore=config.ignore,
            exclude=config.exclude,
            run_every_op=config.run_every_op,
        )
        models = [engine.Target(e.target, e.input_shapes, e.args, e.kwargs) for e in config.models]
        return config, options, models

    def targets(self, path: str) -> tuple[list, object, Optional[str]]:
        """What to check for ``path``: the file, and the configured models that run it."""
        from convlint import usage

        config, options, models = self.options_and_models()
        targets: list = [path]
        cache_root = None
        if models and config.path:
            cache_root = os.path.dirname(os.path.abspath(config.path))
            chosen, _others = usage.touched(models, [path], usage.Cache(cache_root))
            targets += chosen
        return targets, options, cache_root


def build_server(timeout: float = 120.0):
    from lsprotocol import types
    from pygls.lsp.server import LanguageServer
    from pygls.uris import to_fs_path

    from convlint import worker

    server = LanguageServer("convlint", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Full)
    checker = Checker()

    @server.feature(types.INITIALIZE)
    def initialize(ls, params: types.InitializeParams) -> None:
        folders = params.workspace_folders or []
        uri = folders[0].uri if folders else params.root_uri
        checker.root = to_fs_path(uri) if uri else os.getcwd()
        os.chdir(checker.root)  # paths in findings and configured targets are the root's

    async def check(ls, uri: str) -> None:
        path = to_fs_path(uri)
        if not path or not path.endswith(".py"):
            return
        try:
            targets, options, cache_root = checker.targets(path)
        except Exception as exc:  # a broken [tool.convlint]: said on the file, nothing checked
            ls.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=uri, diagnostics=[_problem(f"configuration: {exc}")])
            )
            return
        pending = worker.Pending(targets, options, cache_root)  # forked here, in the loop's thread
        # awaited in another thread; a check that hangs is stopped at ``timeout``, the server goes on
        outcome = await asyncio.get_running_loop().run_in_executor(None, pending.result, timeout)
        by_uri: dict[str, list] = {uri: []}
        for finding in outcome.findings:
            by_uri.setdefault(_uri(finding["path"]), []).append(diagnostic(finding))
        if outcome.error:
            by_uri[uri].append(_problem(outcome.error))
        # A file this check published to before and found clean now is cleared.
        for stale in checker.published.get(uri, set()) - set(by_uri):
            by_uri[stale] = []
        checker.published[uri] = {u for u, found in by_uri.items() if found}
        for target, found in by_uri.items():
            ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=target, diagnostics=found))

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls, params: types.DidOpenTextDocumentParams) -> None:
        await check(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls, params: types.DidSaveTextDocumentParams) -> None:
        await check(ls, params.text_document.uri)

    return server


def _problem(message: str):
    from lsprotocol import types

    origin = types.Position(line=0, character=0)
    return types.Diagnostic(
        range=types.Range(start=origin, end=origin),
        message=message,
        severity=types.DiagnosticSeverity.Error,
        source="convlint",
    )


def main(timeout: float = 120.0) -> int:
    from convlint import worker

    worker.warm()
    build_server(timeout).start_io()
    return 0
