"""``convlint server``: the Language Server Protocol over stdio (pygls).

On open and on save, a Python file is checked as the pre-commit hook checks it: the models
it defines, and every configured model whose construction or ``forward`` ran code in it
(the file map of ``convlint.usage``). Each check runs in a child forked from this warm
process (``convlint.worker``): torch and the rules are imported once, the user's code anew
every time. Findings become diagnostics on the files they are in. The command
``convlint.showGraph`` (a code action on every finding) draws the file's models into an
HTML page in the project's cache folder and returns its path.
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Optional

from convlint.common import VERSION

SHOW_GRAPH = "convlint.showGraph"  # arguments: a file's uri, and optionally a 0-based line to focus on
SEVERITIES = {"error": 1, "warning": 2, "info": 3}  # lsprotocol's DiagnosticSeverity values


def position(path: str, line: int, column: int):
    """A 1-based line and character column (convlint's) as an LSP position: 0-based, the
    column in UTF-16 code units (the protocol's default encoding)."""
    import linecache

    from lsprotocol import types

    text = linecache.getline(path, line)[: column - 1]
    return types.Position(line=line - 1, character=len(text.encode("utf-16-le")) // 2)


def span(record: dict):
    """The LSP range of a finding, related location, edit or hover entry."""
    from lsprotocol import types

    path = os.path.abspath(record["path"])
    return types.Range(
        start=position(path, record["line"], record["column"]),
        end=position(path, record["end_line"], record["end_column"]),
    )


@functools.lru_cache(maxsize=1)
def rule_docs() -> dict[str, str]:
    """Each rule's documentation, as a link: its section of docs/rules.md in this checkout
    (``convlint rules --markdown`` writes it), or the project page."""
    from pygls.uris import from_fs_path

    from convlint import engine

    page = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "rules.md")
    base = from_fs_path(page) if os.path.isfile(page) else "https://pypi.org/project/convlint/"
    return {r.code: f"{base}#{r.code.lower()}-{r.name}" for r in engine.all_rules()[0]}


def diagnostic(finding: dict):
    """A finding (``Finding.to_dict()``) as an LSP diagnostic."""
    from lsprotocol import types

    related = [
        types.DiagnosticRelatedInformation(
            location=types.Location(uri=_uri(r["path"]), range=span(r)), message=r["message"]
        )
        for r in finding.get("related") or ()
    ]
    docs = rule_docs().get(finding["code"])
    return types.Diagnostic(
        range=span(finding),
        code_description=types.CodeDescription(href=docs) if docs else None,
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
        self.hovers: dict[str, list] = {}  # absolute path -> hover entries from its last check
        self.findings: dict[str, list] = {}  # uri -> the last check's findings there (their fixes)

    def options_and_models(self):
        from convlint import config as config_mod

        config = config_mod.load(start=self.root or ".")
        return config, config.options(), config.targets()

    def diagnostics(self, uri: str, outcome) -> dict[str, list]:
        """What a check's outcome publishes: diagnostics per file (the checked one always,
        files it published to before and found clean now, with none)."""
        for path, entries in _by_path(outcome.hovers).items():
            self.hovers[path] = entries
        by_uri: dict[str, list] = {uri: []}
        findings: dict[str, list] = {}
        for finding in outcome.findings:
            by_uri.setdefault(_uri(finding["path"]), []).append(diagnostic(finding))
            findings.setdefault(_uri(finding["path"]), []).append(finding)
        if outcome.error:
            by_uri[uri].append(_problem(outcome.error))
        for stale in self.published.get(uri, set()) - set(by_uri):
            by_uri[stale] = []
        self.published[uri] = {u for u, found in by_uri.items() if found}
        for target in by_uri:
            self.findings[target] = findings.get(target, [])
        return by_uri

    def code_actions(self, uri: str, where) -> list:
        from lsprotocol import types

        actions, safe, drawn = [], {}, []
        for finding in self.findings.get(uri, ()):
            at = span(finding)
            here = not (_before(at.end, where.start) or _before(where.end, at.start))  # under the cursor
            if here and finding["severity"] != "info":
                drawn.append(_show_graph(uri, finding))
            fix = finding.get("fix")
            if not fix or not fix["edits"]:
                continue
            edits = _workspace_edit(fix["edits"])
            unsafe = fix["applicability"] != "safe"
            if unsafe is False:
                for e in fix["edits"]:
                    safe[tuple(sorted(e.items()))] = e
            if not here:
                continue
            actions.append(
                types.CodeAction(
                    title=f"convlint: {fix['description']} ({finding['code']}){' (unsafe)' * unsafe}",
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[diagnostic(finding)],
                    edit=edits,
                    is_preferred=not unsafe,
                )
            )
        if safe:
            actions.append(
                types.CodeAction(
                    title="convlint: fix all safe findings in this file",
                    kind=types.CodeActionKind.SourceFixAll,
                    edit=_workspace_edit(list(safe.values())),
                )
            )
        return actions + drawn

    def drawing(self, path: str, line: Optional[int]):
        """ "Show graph": the models checked for ``path`` drawn (focused on the finding at
        the 0-based ``line``, if given) into an HTML page in the project's cache folder."""
        from convlint import usage, worker

        targets, options, _ = self.targets(path)
        rel = os.path.relpath(path, self.root or ".")
        name = os.path.splitext(rel)[0].replace(os.sep, ".").lstrip(".") or "model"
        focus = None if line is None else f"{rel}:{int(line) + 1}"
        folder = os.path.join(usage.cache_folder(self.root or "."), "graph")
        os.makedirs(folder, exist_ok=True)
        out_path = os.path.join(folder, f"{name}{'' if line is None else f'.{int(line) + 1}'}.html")
        return worker.drawing(targets, options, focus, out_path)

    def hovers_at(self, path: str, line: int, column: int) -> list[dict]:
        """The hover entries whose span holds a position (1-based, as findings)."""
        at = (line, column)
        return [
            e for e in self.hovers.get(path, ()) if (e["line"], e["column"]) <= at < (e["end_line"], e["end_column"])
        ]

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

    server = LanguageServer("convlint", VERSION, text_document_sync_kind=types.TextDocumentSyncKind.Full)
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
        pending = worker.checking(targets, options, cache_root)  # forked here, in the loop's thread
        # awaited in another thread; a check that hangs is stopped at ``timeout``, the server goes on
        outcome = await asyncio.get_running_loop().run_in_executor(None, pending.result, timeout)
        for target, found in checker.diagnostics(uri, outcome).items():
            ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=target, diagnostics=found))

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls, params: types.HoverParams) -> Optional[types.Hover]:
        """Over a layer's constructor call or a `forward` line calling it: each module it
        built, with its settings, size map, sizes at the example, receptive field and jump."""
        path = os.path.abspath(to_fs_path(params.text_document.uri))
        over = checker.hovers_at(path, params.position.line + 1, params.position.character + 1)
        if not over:
            return None
        return types.Hover(
            contents=types.MarkupContent(
                kind=types.MarkupKind.Markdown, value="\n\n---\n\n".join(e["text"] for e in over)
            ),
            range=span(over[0]),
        )

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix, types.CodeActionKind.SourceFixAll]),
    )
    def code_action(ls, params: types.CodeActionParams) -> list:
        """Each finding's fix under the cursor (safe ones preferred, unsafe ones marked),
        and "fix all safe convlint findings in this file"."""
        uri = params.text_document.uri
        return checker.code_actions(uri, params.range)

    _show_graph_command(server, checker, timeout)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls, params: types.DidOpenTextDocumentParams) -> None:
        await check(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls, params: types.DidSaveTextDocumentParams) -> None:
        await check(ls, params.text_document.uri)

    return server


def _show_graph_command(server, checker: Checker, timeout: float) -> None:
    from pygls.uris import to_fs_path

    @server.command(SHOW_GRAPH)
    async def show_graph(ls, *arguments) -> str:
        """Draw the file's models (focused on the finding at the line, where given) into
        an HTML page; its path is the answer."""
        uri, line = (list(arguments) + [None])[:2]
        pending = checker.drawing(to_fs_path(uri), line)  # forked here, in the loop's thread
        outcome = await asyncio.get_running_loop().run_in_executor(None, pending.result, timeout)
        if outcome.drawn is None:  # answered as an error, with the reason
            raise RuntimeError(f"convlint: no graph of {uri}: {outcome.error}")
        return outcome.drawn


def _before(a, b) -> bool:
    return (a.line, a.character) < (b.line, b.character)


def _show_graph(uri: str, finding: dict):
    """The command that draws the graph of a finding, offered as a code action. A bare
    Command, which every client takes: a CodeAction holding one is read as a Command by
    lsprotocol's own converter (its test for the union is the key "command")."""
    from lsprotocol import types

    return types.Command(
        title=f"convlint: show the graph of this finding ({finding['code']})",
        command=SHOW_GRAPH,
        arguments=[uri, finding["line"] - 1],
    )


def _workspace_edit(edits: list):
    """convlint's edits (``Finding.to_dict()["fix"]["edits"]``) as an LSP workspace edit."""
    from lsprotocol import types

    changes: dict[str, list] = {}
    for e in edits:
        changes.setdefault(_uri(e["path"]), []).append(types.TextEdit(range=span(e), new_text=e["content"]))
    return types.WorkspaceEdit(changes=changes)


def _by_path(entries: list) -> dict[str, list]:
    found: dict[str, list] = {}
    for entry in entries:
        found.setdefault(os.path.abspath(entry["path"]), []).append(entry)
    return found


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
