"""`convlint server` end to end: a real LSP client (pytest-lsp) talks to it over stdio."""

import os
import shutil
import sys

import pytest
import pytest_lsp
from conftest import FIXTURES
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "convlint", "server", "--timeout", "8"])


@pytest.fixture
def workspace(tmp_path):
    """A project with the seed example, a U-Net configured with its arguments, and models
    that hang and crash in their constructors."""
    shutil.copyfile(os.path.join(FIXTURES, "seed.py"), tmp_path / "aspp.py")
    (tmp_path / "hangs.py").write_text(
        "import time\n\nimport torch.nn as nn\n\n\nclass Hangs(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv2d(3, 8, 3)\n"
        "        time.sleep(3600)\n\n    def forward(self, x):\n        return self.conv(x)\n"
    )
    (tmp_path / "crashes.py").write_text(
        "import os\n\nimport torch.nn as nn\n\n\nclass Crashes(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv2d(3, 8, 3)\n"
        "        os._exit(3)\n\n    def forward(self, x):\n        return self.conv(x)\n"
    )
    shutil.copytree(os.path.join(FIXTURES, "repos", "unet", "unet"), tmp_path / "unet")
    (tmp_path / "pyproject.toml").write_text(
        "[tool.convlint]\ninput-shape = [1, 256, 19, 19]\n"
        'models = [{ target = "unet.unet_model:UNet(3, 2)", input-shape = [1, 3, 64, 64] }]\n'
    )
    return tmp_path


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient, workspace):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=pytest_lsp.client_capabilities("visual-studio-code"),
            root_uri=workspace.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="project")],
        )
    )
    yield
    await lsp_client.shutdown_session()


async def opened(client, path):
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=path.read_text())
        )
    )
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return uri


@pytest.mark.asyncio(loop_scope="function")
async def test_opening_the_seed_example_publishes_its_findings_with_exact_ranges(client, workspace):
    uri = await opened(client, workspace / "aspp.py")
    found = client.diagnostics[uri]
    assert [(d.code, d.range.start.line, d.range.start.character, d.severity) for d in found] == [
        ("CVL101", 16, 23, types.DiagnosticSeverity.Error),
        ("CVL301", 23, 28, types.DiagnosticSeverity.Error),
    ]
    assert found[0].message.endswith("at the example input 19x19 -> 9x9; use padding=6")
    assert all(d.source == "convlint" for d in found)
    assert found[0].code_description.href.endswith("docs/rules.md#cvl101-same-padding-mismatch")


@pytest.mark.asyncio(loop_scope="function")
async def test_a_model_that_hangs_is_stopped_and_the_server_goes_on(client, workspace):
    uri = await opened(client, workspace / "hangs.py")
    (problem,) = client.diagnostics[uri]
    assert problem.message == "the check did not finish within 8 s (a model that hangs?); it was stopped"
    seed = await opened(client, workspace / "aspp.py")  # the next check still runs
    assert [d.code for d in client.diagnostics[seed]] == ["CVL101", "CVL301"]


@pytest.mark.asyncio(loop_scope="function")
async def test_a_model_that_crashes_the_check_gives_a_diagnostic_and_the_server_goes_on(client, workspace):
    uri = await opened(client, workspace / "crashes.py")
    (problem,) = client.diagnostics[uri]
    assert problem.message == "the check crashed (exit status 3)"
    seed = await opened(client, workspace / "aspp.py")
    assert [d.code for d in client.diagnostics[seed]] == ["CVL101", "CVL301"]


@pytest.mark.asyncio(loop_scope="function")
async def test_a_block_file_that_a_configured_model_builds_gets_that_models_findings(client, workspace):
    parts = workspace / "unet" / "unet_parts.py"
    broken = parts.read_text().replace(
        "kernel_size=3, padding=1, bias", "kernel_size=3, padding=1, dilation=2, bias", 1
    )
    parts.write_text(broken)
    uri = await opened(client, parts)  # it defines no model that builds without arguments: UNet(3, 2) runs it
    found = client.diagnostics[uri]
    assert {(d.code, d.range.start.line) for d in found} == {("CVL201", 15)}
    assert any("`inc.double_conv.0` Conv2d(kernel 3, dilation 2, padding 1)" in d.message for d in found)


@pytest.mark.asyncio(loop_scope="function")
async def test_hovering_the_dilated_layer_shows_its_size_map_and_sizes_at_the_example(client, workspace):
    uri = await opened(client, workspace / "aspp.py")
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=16, character=30)
        )
    )
    assert hover.contents.value == (
        "**`branch2`** Conv2d(kernel 3, dilation 6, padding 1) in `aspp.py:ASPP`  \n"
        "size: H -> H - 10, W -> W - 10  \n"
        "at the example input: 1x256x19x19 -> 1x64x9x9  \n"
        "receptive field 13, jump 1  \n"
        "model input: runs for no H, W: `torch.cat(branches, dim=1)`"  # its merges break at every size
    )
    assert (hover.range.start.line, hover.range.start.character) == (16, 23)
    nothing = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=0, character=0)
        )
    )
    assert nothing is None


def applied(text, edits):
    """A document's text with LSP text edits applied (last first, so offsets hold)."""
    lines = text.splitlines(True)
    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        start, end = edit.range.start, edit.range.end
        head = "".join(lines[: start.line]) + lines[start.line][: start.character]
        tail = lines[end.line][end.character :] + "".join(lines[end.line + 1 :])
        lines = (head + edit.new_text + tail).splitlines(True)
    return "".join(lines)


@pytest.mark.asyncio(loop_scope="function")
async def test_the_quick_fix_applied_and_saved_leaves_no_diagnostics(client, workspace):
    path = workspace / "aspp.py"
    uri = await opened(client, path)
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=types.Position(line=16, character=30), end=types.Position(line=16, character=30)),
            context=types.CodeActionContext(diagnostics=client.diagnostics[uri]),
        )
    )
    titles = [a.title for a in actions]
    assert titles == [
        "convlint: Set padding=6 (CVL101)",
        "convlint: fix all safe findings in this file",
        "convlint: show the graph of this finding (CVL101)",
    ]
    quick = actions[0]
    assert quick.is_preferred and quick.kind == types.CodeActionKind.QuickFix
    path.write_text(applied(path.read_text(), quick.edit.changes[uri]))
    assert "nn.Conv2d(channels, out, 3, padding=6, dilation=6)" in path.read_text()
    client.text_document_did_save(types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert list(client.diagnostics[uri]) == []


@pytest.mark.asyncio(loop_scope="function")
async def test_show_graph_on_a_finding_writes_the_html_picture_of_its_merge_and_answers_its_path(client, workspace):
    import xml.etree.ElementTree as ET

    uri = await opened(client, workspace / "aspp.py")
    on_cat = types.Range(start=types.Position(line=23, character=30), end=types.Position(line=23, character=30))
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=on_cat,
            context=types.CodeActionContext(diagnostics=client.diagnostics[uri]),
        )
    )
    [show] = [a for a in actions if isinstance(a, types.Command)]
    assert show.title == "convlint: show the graph of this finding (CVL301)"
    path = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=show.command, arguments=show.arguments)
    )
    assert path == str(workspace / ".convlint_cache" / "graph" / "aspp.24.html")
    page = (workspace / ".convlint_cache" / "graph" / "aspp.24.html").read_text()
    svg = ET.fromstring(page[page.index("<svg") : page.index("</svg>") + len("</svg>")])
    marked = {g.get("id"): g.get("class") for g in svg.iter("{http://www.w3.org/2000/svg}g") if g.get("id")}
    assert "merge" in marked["n_cat"] and "parting" in marked["n_branch2"]
    assert "CVL301" in page and (workspace / ".convlint_cache" / ".gitignore").exists()
    # with no line, the whole model: all four branches
    whole = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=show.command, arguments=[uri])
    )
    assert whole.endswith("aspp.html") and all(f'id="n_branch{i}"' in open(whole).read() for i in range(1, 5))
    # a file whose model crashes the check: an error answer with the reason, the server goes on
    with pytest.raises(Exception, match="no graph of .*crashes.py: the check crashed"):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=show.command, arguments=[(workspace / "crashes.py").as_uri()])
        )
