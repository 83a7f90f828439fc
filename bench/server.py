"""The language server's benchmark: the time from a save to its diagnostics, against
``python -c "import torch"`` (what every ``convlint check`` pays first), and the server's
memory after many saves against after the first.

    pip install -c constraints.txt -e ".[dev]" && python bench/server.py [--saves 100] [--json FILE]

Two files are saved: the seed example (an ASPP head) and a dilated ResNet-50 with an ASPP
head (``bench/models.py``'s ``DilatedResNetASPP``). The server runs as users run it,
``convlint server``, driven by pygls's own LSP client over stdio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB (Linux)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def import_torch_seconds(runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def workspace() -> str:
    folder = tempfile.mkdtemp(prefix="convlint-server-bench-")
    shutil.copyfile(os.path.join(ROOT, "fixtures", "seed.py"), os.path.join(folder, "seed.py"))
    shutil.copyfile(os.path.join(HERE, "models.py"), os.path.join(folder, "models.py"))
    with open(os.path.join(folder, "resnet_aspp.py"), "w") as fh:
        fh.write("from models import DilatedResNetASPP\n\n\nclass ResNet50ASPP(DilatedResNetASPP):\n    pass\n")
    with open(os.path.join(folder, "pyproject.toml"), "w") as fh:
        fh.write("[tool.convlint]\nexclude = ['models.py']\n")
    return folder


async def run(saves: int) -> dict:
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    folder = workspace()
    client = LanguageClient("convlint-bench", "1")
    arrived: dict = {}

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def diagnostics(ls, params: types.PublishDiagnosticsParams) -> None:
        arrived.setdefault(params.uri, asyncio.get_running_loop().create_future())
        if not arrived[params.uri].done():
            arrived[params.uri].set_result(params.diagnostics)

    await client.start_io(sys.executable, "-m", "convlint", "server")
    root = "file://" + folder
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            root_uri=root,
            workspace_folders=[types.WorkspaceFolder(uri=root, name="bench")],
        )
    )
    client.initialized(types.InitializedParams())

    async def save(name: str) -> float:
        uri = f"{root}/{name}"
        arrived[uri] = asyncio.get_running_loop().create_future()
        start = time.perf_counter()
        client.text_document_did_save(
            types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        await asyncio.wait_for(arrived[uri], 600)
        return time.perf_counter() - start

    pid = client._server.pid
    figures = {}
    for name in ("seed.py", "resnet_aspp.py"):
        await save(name)  # the first save of a file also warms the file system cache
        figures[name] = statistics.median([await save(name) for _ in range(5)])
    after_first = rss_mib(pid)
    for _ in range(saves):
        await save("seed.py")
    after_many = rss_mib(pid)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    shutil.rmtree(folder, ignore_errors=True)
    return {"save_to_diagnostics_s": figures, "rss_mib_after_first": after_first, "rss_mib_after_saves": after_many}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=100)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch_import = import_torch_seconds()
    figures = asyncio.run(run(args.saves))
    figures["import_torch_s"] = torch_import
    figures["saves"] = args.saves
    print("| measure | value | ratio | target |")
    print("|---|---:|---:|---|")
    for name, seconds in figures["save_to_diagnostics_s"].items():
        print(
            f"| save -> diagnostics, {name} | {seconds:.2f} s | {seconds / torch_import:.2f}x `import torch` | <= 0.2x |"
        )
    growth = figures["rss_mib_after_saves"] / figures["rss_mib_after_first"]
    print(
        f"| server memory after {args.saves} saves | {figures['rss_mib_after_saves']:.0f} MiB | "
        f"{growth:.2f}x after the first | <= 1.2x |"
    )
    print(f'| `python -c "import torch"` | {torch_import:.2f} s | | |')
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
