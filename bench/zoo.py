"""convlint across model zoos: torchvision (and timm, where installed), no weights.

Runs in its own environment, never in CI (torchvision from pip needs torch 2.14.1, a
CUDA build of several GB that runs on the CPU):

    python -m venv .venv-zoo && .venv-zoo/bin/pip install torch==2.14.1 torchvision==0.29.1 timm
    .venv-zoo/bin/pip install -e . && .venv-zoo/bin/python bench/zoo.py --json bench/zoo.json

Each model is built on the meta device with ``weights=None`` / ``pretrained=False`` and
checked at its default input size. For each: analysed fully, with some submodules as
leaves, or failed (with the reason); the share of convolutions whose output sizes are
symbolic; findings by code; time.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
import warnings


def _torchvision_models():
    import torchvision.models as tvm

    for name in sorted(tvm.list_models(module=tvm)):
        yield f"torchvision/{name}", (lambda name=name: tvm.get_model(name, weights=None)), (1, 3, 224, 224)
    for name in sorted(tvm.list_models(module=tvm.segmentation)):
        yield f"torchvision.segmentation/{name}", (lambda name=name: tvm.get_model(name, weights=None, weights_backbone=None)), (1, 3, 520, 520)


def _timm_models(limit):
    import timm

    for name in sorted(timm.list_models())[:limit]:
        cfg = timm.get_pretrained_cfg(name)
        size = getattr(cfg, "input_size", (3, 224, 224)) if cfg else (3, 224, 224)
        yield f"timm/{name}", (lambda name=name: timm.create_model(name, pretrained=False)), (1, *size)


def analyse(name, factory, shape) -> dict:
    import torch
    import torch.nn as nn

    from convlint import engine, load, sizes

    start = time.perf_counter()
    record = {"model": name, "input": list(shape)}
    try:
        model = load.build(load.Candidate(name, "", 0, factory))
    except Exception as exc:
        record.update(status="failed", reason=f"build: {load.describe(exc)}")
        return record
    with engine.analysing(model) as meta:
        view, _, input_error = engine.build_view(meta, [shape], name=name, path="<zoo>", line=1)
        findings = engine.check_model(meta, [shape], name=name, path="<zoo>", line=1)
        analysis = view.analysis
        leaves = dict(analysis.trace.leaves) if analysis.trace else {}
        convs = symbolic = 0
        if analysis.sizes is not None:
            for node, shadow in analysis.sizes.shadows.items():
                if node.op == "call_module" and isinstance(analysis.sizes.graph_module.get_submodule(node.target), nn.modules.conv._ConvNd) or (
                    node.op == "call_function" and node.target in (torch.nn.functional.conv2d, torch.nn.functional.conv1d)
                ):
                    convs += 1
                    dims = shadow.dims[2:] if isinstance(shadow, sizes.SymTensor) else (None,)
                    symbolic += all(d is not None for d in dims)
    if analysis.error or input_error or (analysis.sizes is not None and analysis.sizes.error):
        status = "failed"
        record["reason"] = analysis.error or input_error or load.describe(analysis.sizes.error[1])
    else:
        status = "leaves" if leaves else "full"
    record.update(
        status=status,
        leaves=leaves,
        convs=convs,
        symbolic_convs=symbolic,
        findings=[{"code": f.code, "severity": f.severity, "module": f.module, "message": f.message} for f in findings],
        seconds=round(time.perf_counter() - start, 3),
    )
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write every record here")
    parser.add_argument("--timm", type=int, default=0, help="also the first N timm models (0: none)")
    parser.add_argument("--only", help="substring of the model names to run")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    sources = list(_torchvision_models())
    if args.timm:
        sources += list(_timm_models(args.timm))
    records = []
    for name, factory, shape in sources:
        if args.only and args.only not in name:
            continue
        try:
            record = analyse(name, factory, shape)
        except Exception as exc:  # a crash of convlint itself: the zoo's whole point is to find these
            record = {"model": name, "status": "crashed", "reason": f"{type(exc).__name__}: {exc}"}
        records.append(record)
        codes = collections.Counter(f["code"] for f in record.get("findings", []))
        print(f"{record['status']:7} {name:60} {record.get('symbolic_convs', 0)}/{record.get('convs', 0)} symbolic  {dict(codes)}  {record.get('reason', '')[:100]}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(records, fh, indent=2)
    print(summary(records))


def summary(records) -> str:
    total = len(records)
    by_status = collections.Counter(r["status"] for r in records)
    full_symbolic = sum(1 for r in records if r.get("convs") and r["symbolic_convs"] == r["convs"])
    codes = collections.Counter(f["code"] for r in records for f in r.get("findings", []))
    errors = sum(1 for r in records for f in r.get("findings", []) if f["severity"] == "error")
    return "\n".join(
        [
            f"models: {total}; " + ", ".join(f"{k}: {v}" for k, v in sorted(by_status.items())),
            f"symbolic sizes for every convolution: {full_symbolic}/{total} ({100 * full_symbolic / max(total, 1):.1f}%)",
            f"findings by code: {dict(sorted(codes.items()))}; error-severity findings: {errors}",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
