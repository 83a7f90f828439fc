"""convlint's benchmark: speed, memory and scaling, as ratios against what users would
run instead, all measured in one run on this machine.

    pip install -c constraints.txt -e ".[bench]" && python bench/run.py

Every measurement runs in a fresh process, so its peak memory (the process's maximum
resident set) is its own; times exclude interpreter start and ``import torch``. The table
goes to stdout (Markdown) and, with ``--json FILE``, the raw figures to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GIB = 1 << 30


# ---------------------------------------------------------------- one measurement (child process)


def _input(model_name: str, size: int) -> tuple:
    from models import MODELS

    _, lead = MODELS[model_name]
    return (*lead, size) if model_name == "tcn" else (*lead, size, size)


def _build(model_name: str, device: str):
    import torch
    from models import MODELS

    factory, _ = MODELS[model_name]
    with torch.device(device):
        return factory().eval()


def measure(method: str, model_name: str, size: int) -> dict:
    """Time one analysis (model built, analysed) in this process; the parent reads peak RSS."""
    import torch
    import torch.fx as fx

    shape = _input(model_name, size)
    start = time.perf_counter()
    if method == "convlint":
        from models import MODELS

        from convlint import engine, load

        model = load.build(load.Candidate(model_name, __file__, 1, MODELS[model_name][0]))
        findings = engine.check_model(model, [shape])
        assert not [f for f in findings if f.code.startswith("CVL9")], findings
    elif method in ("capture-fx", "capture-execution"):
        from convlint import common, sizes  # both captures run inside convlint, which has it loaded
        from convlint.capture import execute, trace

        common.freeze_once()  # as convlint does before its first build (else a full collection lands in one)
        model = _build(model_name, "meta")
        start = time.perf_counter()  # capture and sizes: the model is built either way
        traced = trace(model) if method == "capture-fx" else execute.capture(model, [shape], sizes.PREDICTOR)
        sizes.propagate(traced.graph_module, [shape])
    elif method == "shapeprop-meta":
        from torch.fx.passes.shape_prop import ShapeProp

        model = _build(model_name, "meta")
        ShapeProp(fx.symbolic_trace(model)).propagate(torch.empty(shape, device="meta"))
    elif method == "shapeprop-real":
        from torch.fx.passes.shape_prop import ShapeProp

        model = _build(model_name, "cpu")
        with torch.no_grad():
            ShapeProp(fx.symbolic_trace(model)).propagate(torch.zeros(shape))
    elif method == "fake-symbolic":
        from torch._subclasses.fake_tensor import FakeTensorMode
        from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatelessSymbolicContext
        from torch.fx.passes.fake_tensor_prop import FakeTensorProp

        model = _build(model_name, "cpu")
        mode = FakeTensorMode(shape_env=ShapeEnv(), allow_non_fake_inputs=True)
        dynamic = [DimDynamic.STATIC] * 2 + [DimDynamic.DYNAMIC] * (len(shape) - 2)
        x = mode.from_tensor(torch.empty(shape), symbolic_context=StatelessSymbolicContext(dynamic_sizes=dynamic))
        try:
            with torch.no_grad():
                FakeTensorProp(fx.symbolic_trace(model), mode).propagate(x)
        except Exception as exc:  # PyTorch's own propagation cannot size this model: a result, not a failed run
            first = next((line for line in str(exc).splitlines() if line.strip()), "")
            return {"time": time.perf_counter() - start, "cannot": f"{type(exc).__name__}: {first}"[:200]}
    elif method == "guard":
        import convlint

        model = convlint.guard(_build(model_name, "cpu"), shape)
        check = next(iter(model._forward_pre_hooks.values()))
        x = torch.zeros(shape)
        with torch.no_grad():
            for _ in range(20):  # warm: allocator, kernels, the size decided once
                model(x)
            forward = _per_call(lambda: model(x), 200)
        start = time.perf_counter()
        for _ in range(100000):
            check(model, (x,), {})
        return {"time": (time.perf_counter() - start) / 100000, "forward": forward}
    elif method == "graph":
        # `convlint graph`: the analysis (as `check`), then the drawing apart from it, the whole
        # picture (folded to fit) and the focused one, each to Mermaid and HTML
        from models import MODELS

        from convlint import engine
        from convlint.options import Options, Shape
        from convlint.report import draw

        target = f"{HERE}/models.py:{MODELS[model_name][0].__name__}"
        result = engine.check_paths([target], Options(input_shapes=(Shape(shape),)), keep_views=True)
        drawn_at = time.perf_counter()
        whole = engine.drawn_views(result)
        draw.mermaid(whole), draw.html_page(whole)
        focused_at = time.perf_counter()
        focused = engine.drawn_views(result, focus="CVL3")
        draw.mermaid(focused), draw.html_page(focused)
        end = time.perf_counter()
        assert len(whole) == len(focused) == 1, (whole, focused)
        return {
            "time": end - drawn_at,
            "analysis": drawn_at - start,
            "whole": focused_at - drawn_at,
            "focused": end - focused_at,
            "nodes": len(whole[0].nodes),
            "focused_nodes": len(focused[0].nodes),
        }
    elif method == "torchinfo":
        import torchinfo

        model = _build(model_name, "cpu")
        torchinfo.summary(model, input_size=shape, device="cpu", verbose=0)
    else:
        raise SystemExit(f"unknown method {method}")
    return {"time": time.perf_counter() - start}


def _per_call(call, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n


def _child(method: str, model_name: str, size: int) -> None:
    sys.path.insert(0, HERE)
    import torch  # noqa: F401  (import cost is not the method's)

    result = measure(method, model_name, size)
    result["warm"] = measure(method, model_name, size)["time"]  # again, libraries now loaded
    result["peak_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # this process's peak RSS
    print(json.dumps(result))


# ---------------------------------------------------------------- the parent


def run_child(method: str, model_name: str, size: int, repeat: int = 1) -> dict:
    """Best time of ``repeat`` fresh processes, and the largest peak RSS among them."""
    times, peaks = [], []
    for _ in range(repeat):
        proc = subprocess.run(
            [sys.executable, __file__, "--child", method, model_name, str(size)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=3600,
            env=_writing_bytecode(),  # cold as a user's second run (``wall``): the first process writes it
        )
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:200]}
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        times.append((result["time"], result["warm"]))
        peaks.append(result["peak_kib"])
        extra = {k: v for k, v in result.items() if k not in ("time", "warm", "peak_kib")}  # the guard's forward
    best = {"time": min(t for t, _ in times), "warm": min(w for _, w in times), "peak_gib": max(peaks) / (1 << 20)}
    return {**best, **extra}


# `convlint check --jobs`: a directory of 8 model files, each a model of bench/models.py
JOBS_MODELS = [
    "DilatedResNetASPP",
    "ResNet50OS8",
    "UNet",
    "TCN",
    "PlainStack",
    "WindowViT",
    "TinyUNet",
    "DeepUNet1000",
]


def model_directory(folder: str) -> str:
    """Write the 8 files of the --jobs measurement into ``folder``."""
    os.makedirs(folder, exist_ok=True)
    for name in JOBS_MODELS:
        arguments = "300" if name == "PlainStack" else ""
        with open(os.path.join(folder, f"{name.lower()}.py"), "w") as fh:
            fh.write(
                "import importlib.util\n\n"
                f'spec = importlib.util.spec_from_file_location("bench_models", {os.path.join(HERE, "models.py")!r})\n'
                "models = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(models)\n\n\n"
                f"class Bench{name}(models.{name}):\n    def __init__(self):\n        super().__init__({arguments})\n"
            )
    return folder


def _writing_bytecode() -> dict:
    """This environment, with bytecode written (an environment may forbid it: every process
    would compile convlint's modules again, 0.04-0.1 s)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(argv: list, repeat: int = 5, cwd: str = ROOT) -> float:
    """Median wall time of a whole command, interpreter start included, as a user's
    second run: bytecode written (an environment may forbid it, PYTHONDONTWRITEBYTECODE,
    and every run would compile convlint's modules again, 0.1 s), one run before the
    measured ones."""
    env = _writing_bytecode()
    subprocess.run(argv, cwd=cwd, capture_output=True, timeout=600, env=env)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, capture_output=True, timeout=600, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


PLAN = [
    # (method, model, input size, repeats)
    *[("convlint", "resnet50-aspp-os8", n, 3) for n in (224, 1024, 4096)],
    *[("shapeprop-meta", "resnet50-aspp-os8", n, 3) for n in (224, 1024, 4096)],
    ("fake-symbolic", "resnet50-aspp-os8", 224, 1),
    ("fake-symbolic", "resnet50-os8", 224, 3),
    ("convlint", "resnet50-os8", 224, 3),
    ("shapeprop-meta", "resnet50-os8", 224, 3),
    ("shapeprop-real", "resnet50-aspp-os8", 224, 1),
    ("shapeprop-real", "resnet50-aspp-os8", 1024, 1),
    ("torchinfo", "resnet50-aspp-os8", 224, 1),
    ("torchinfo", "resnet50-aspp-os8", 1024, 1),
    ("convlint", "unet", 224, 3),
    ("shapeprop-meta", "unet", 224, 3),
    ("fake-symbolic", "unet", 224, 1),
    ("torchinfo", "unet", 224, 1),
    ("convlint", "tcn", 65536, 3),
    ("shapeprop-meta", "tcn", 65536, 3),
    ("torchinfo", "tcn", 65536, 1),
    *[("convlint", f"plain-{d}", 224, 3) for d in (100, 300, 1000)],
    *[("shapeprop-meta", f"plain-{d}", 224, 1) for d in (100, 300, 1000)],
    *[(m, model, 224, 3) for m in ("capture-fx", "capture-execution") for model in ("resnet50-aspp-os8", "unet")],
    *[(m, "tcn", 65536, 3) for m in ("capture-fx", "capture-execution")],
    *[(m, "plain-300", 224, 3) for m in ("capture-fx", "capture-execution")],
    ("convlint", "window-vit", 1024, 3),
    ("torchinfo", "window-vit", 1024, 1),
    ("convlint", "billion", 224, 1),
    ("convlint", "billion", 4096, 1),
    ("shapeprop-meta", "billion", 224, 1),
    ("guard", "tiny-unet", 224, 3),
    ("graph", "deep-unet-1000", 64, 3),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "MODEL", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]))
        return

    figures: dict = {}
    for method, model, size, repeat in PLAN:
        key = f"{method}/{model}/{size}"
        figures[key] = run_child(method, model, size, repeat)
        print(f"measured {key}: {figures[key]}", file=sys.stderr)
    py = sys.executable
    figures["import-torch"] = {"time": wall([py, "-c", "import torch"])}
    figures["check-file"] = {"time": wall([py, "-m", "convlint", "check", "bench/models.py:DilatedResNetASPP"])}
    with tempfile.TemporaryDirectory() as folder:
        models = model_directory(folder)
        for jobs in (1, 2):
            figures[f"check-8-models-jobs-{jobs}"] = {
                "time": wall([py, "-m", "convlint", "check", models, "-j", str(jobs)], repeat=3)
            }
    no_model = os.path.join(HERE, "no_model.py")
    figures["check-no-model"] = {"time": wall([py, "-m", "convlint", "check", no_model])}
    print(
        f"measured wall times: {[figures[k] for k in ('import-torch', 'check-file', 'check-no-model')]}",
        file=sys.stderr,
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine(), "figures": figures}, fh, indent=2)
    print(table(figures))
    failed = [key for key, entry in figures.items() if "error" in entry]
    if failed:  # a comparison that did not run is no comparison: the run fails, naming it
        sys.exit(f"bench: {len(failed)} measurement(s) failed: {', '.join(failed)}")


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(row.split(":", 1)[1].strip() for row in fh if row.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}"


def table(f: dict) -> str:
    def t(key):  # None where it failed, or where the alternative cannot analyse the model
        return f[key].get("time") if key in f and "time" in f[key] and "cannot" not in f[key] else None

    def w(key):
        return f[key].get("warm") if key in f else None

    def m(key):
        return f[key].get("peak_gib") if key in f else None

    def ratio(a, b):
        return a / b if a is not None and b else None

    cl = "convlint/resnet50-aspp-os8/"
    rows = [
        (
            "PyTorch's symbolic propagation (FakeTensor + ShapeEnv) / convlint, dilated ResNet-50 body at 224",
            ratio(t("fake-symbolic/resnet50-os8/224"), t("convlint/resnet50-os8/224")),
            ">= 20x",
        ),
        (
            "the same, warm (a second analysis in the same process: libraries loaded)",
            ratio(w("fake-symbolic/resnet50-os8/224"), w("convlint/resnet50-os8/224")),
            ">= 20x",
        ),
        (
            "convlint / meta-tensor ShapeProp, dilated ResNet-50 body at 224",
            ratio(t("convlint/resnet50-os8/224"), t("shapeprop-meta/resnet50-os8/224")),
            "<= 2x",
        ),
        (
            "convlint / meta-tensor ShapeProp, ResNet-50-ASPP at 224",
            ratio(t(cl + "224"), t("shapeprop-meta/resnet50-aspp-os8/224")),
            "<= 2x",
        ),
        ("convlint time, 4096 / 224", ratio(t(cl + "4096"), t(cl + "224")), "<= 1.2x"),
        ("convlint peak memory, 4096 / 224", ratio(m(cl + "4096"), m(cl + "224")), "<= 1.05x"),
        (
            "torchinfo / convlint, ResNet-50-ASPP at 1024",
            ratio(t("torchinfo/resnet50-aspp-os8/1024"), t(cl + "1024")),
            "> 20x",
        ),
        (
            "real-tensor ShapeProp / convlint, ResNet-50-ASPP at 1024",
            ratio(t("shapeprop-real/resnet50-aspp-os8/1024"), t(cl + "1024")),
            "-",
        ),
        ("FakeTensor / convlint, U-Net at 224", ratio(t("fake-symbolic/unet/224"), t("convlint/unet/224")), "-"),
        ("torchinfo / convlint, TCN at 65536", ratio(t("torchinfo/tcn/65536"), t("convlint/tcn/65536")), "-"),
        (
            "time per layer, 1000 convs / 100 convs",
            ratio(ratio(t("convlint/plain-1000/224"), 1000), ratio(t("convlint/plain-100/224"), 100)),
            "<= 1.5x",
        ),
        *[
            (
                f"capture by execution / fx capture (with sizes), {name}",
                ratio(t(f"capture-execution/{key}"), t(f"capture-fx/{key}")),
                "<= 2x",
            )
            for name, key in [
                ("ResNet-50-ASPP at 224", "resnet50-aspp-os8/224"),
                ("U-Net at 224", "unet/224"),
                ("TCN at 65536", "tcn/65536"),
                ("300 convs at 224", "plain-300/224"),
            ]
        ],
        (
            # the slowest family of the zoos: window attention, its padding guards, 24 blocks
            "convlint / torchinfo (one real forward), window-attention ViT of 24 blocks at 1024",
            ratio(t("convlint/window-vit/1024"), t("torchinfo/window-vit/1024")),
            "-",
        ),
        (
            "`convlint check --jobs 2` / `--jobs 1`, a directory of 8 models (2 cores)",
            ratio(t("check-8-models-jobs-2"), t("check-8-models-jobs-1")),
            "<= 0.6x",
        ),
        (
            "`convlint check` on one model file / `python -c 'import torch'`",
            ratio(t("check-file"), t("import-torch")),
            "<= 1.25x",
        ),
        (
            "`convlint check` on a file with no model / `python -c 'import torch'`",
            ratio(t("check-no-model"), t("import-torch")),
            "<= 0.2x",
        ),
    ]
    out = [f"Machine: {machine()}.", "", "| ratio | measured | target |", "|---|---|---|"]
    out += [f"| {name} | {'n/a' if value is None else f'{value:.2f}x'} | {target} |" for name, value, target in rows]
    billion = m("convlint/billion/224")
    out += ["", "| figure | value | target |", "|---|---|---|"]
    out.append(
        f"| convlint peak memory on the 1.2-billion-parameter model (whole process, torch included) | {'n/a' if billion is None else f'{billion:.2f} GiB'} | < 1 GiB |"
    )
    guard = f.get("guard/tiny-unet/224", {})
    if "forward" in guard:
        share = f"{guard['time'] * 1e6:.1f} µs per call, {100 * guard['time'] / guard['forward']:.2f}% of its forward ({guard['forward'] * 1e3:.2f} ms)"
    else:
        share = "n/a"
    out.append(f"| `convlint.guard`'s check, README's TinyUNet at 224 | {share} | < 1% |")
    graph = f.get("graph/deep-unet-1000/64", {})
    if "whole" in graph:
        drawn = (
            f"{graph['whole']:.2f} s the whole picture ({graph['nodes']} nodes, repeats folded), {graph['focused']:.2f} s"
            f" the focused one ({graph['focused_nodes']} nodes); the analysis before them {graph['analysis']:.2f} s"
        )
    else:
        drawn = "n/a"
    out.append(
        f"| `convlint graph` drawing a U-Net of 1,004 convolutions (4,000 ops), apart from the analysis | {drawn} | < 1 s, focused < 40 nodes |"
    )
    slowest = t("convlint/window-vit/1024")
    out.append(
        f"| convlint time, window-attention ViT of 24 blocks at 1024 (the slowest family of the zoos) | {'n/a' if slowest is None else f'{slowest:.2f} s'} | < 5 s |"
    )
    out += _zoo_rows()
    out += _raw_rows(f)
    return "\n".join(out)


def _zoo_rows() -> list:
    """The zoo's time per model and its slowest model, from bench/zoo.json (the zoo's own
    run, `bench/zoo.py --jobs 2`: two models at a time on this machine's two cores)."""
    path = os.path.join(HERE, "zoo.json")
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        records = json.load(fh)
    timed = sorted((r["seconds"], r["model"]) for r in records if "seconds" in r)
    if not timed:
        return []
    median = timed[len(timed) // 2][0]
    over = [r["model"] for r in records if r["status"] == "timeout"]
    slowest = f"{timed[-1][0]:.1f} s ({timed[-1][1]})" + (f"; over the time limit: {', '.join(over)}" if over else "")
    return [
        f"| the zoo's time per model (bench/zoo.json, its own run: 2 at a time), median of {len(timed)} | {median:.2f} s | - |",
        f"| the zoo's slowest model (the same run) | {slowest} | < 60 s |",
    ]


def _raw_rows(f: dict) -> list:
    """Every measurement's own row: time (warm), peak memory; wall times of commands."""
    out = []
    for key in sorted(k for k in f if "/" in k and not k.startswith(("guard/", "graph/"))):
        entry = f[key]
        if "error" in entry:
            out.append(f"| {key} | failed: {entry['error']} | |")
        elif "cannot" in entry:
            out.append(f"| {key} | cannot analyse it: {entry['cannot']} | |")
        else:
            out.append(
                f"| {key} | {entry['time']:.3f} s ({entry['warm']:.3f} s warm), {entry['peak_gib']:.2f} GiB peak | |"
            )
    for key in ("import-torch", "check-file", "check-no-model"):
        out.append(f"| {key} (wall, median of 5) | {f[key]['time']:.3f} s | |")
    for key in ("check-8-models-jobs-1", "check-8-models-jobs-2"):
        if key in f:
            out.append(f"| {key} (wall, median of 3) | {f[key]['time']:.3f} s | |")
    return out


if __name__ == "__main__":
    main()
