"""convlint across model zoos: torchvision and timm, no weights.

Runs in its own environment, never in CI (torchvision from pip needs torch 2.14.1, a
CUDA build of several GB that runs on the CPU); the README's "Model zoos" has the command:

    .venv-zoo/bin/python bench/zoo.py --jobs 2 --json bench/zoo.json --markdown docs/zoo.md

Each model is built on the meta device with ``weights=None`` / ``pretrained=False`` and
checked at its default input size: every torchvision classification and segmentation
model, every timm model, and timm's ResNet, ResNeSt and ResNetV2 families again at output
stride 8. For each: analysed fully, with some submodules as leaves, or failed (with the
reason); the share of convolutions whose output sizes are symbolic; findings by code;
time. Every CVL302 warning is checked on the real model (random weights, CPU) at the
input size it says breaks the model, and the input domain at its boundary sizes and a
few random ones (the agreement is recorded per model).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings


def _torchvision_models():
    import torchvision.models as tvm

    for name in sorted(tvm.list_models(module=tvm)):
        yield f"torchvision/{name}", (lambda name=name: tvm.get_model(name, weights=None)), (1, 3, 224, 224)
    for name in sorted(tvm.list_models(module=tvm.segmentation)):
        yield (
            f"torchvision.segmentation/{name}",
            (lambda name=name: tvm.get_model(name, weights=None, weights_backbone=None)),
            (1, 3, 520, 520),
        )
    # Detectors resize and batch their images from sizes, then keep the boxes their data
    # decides: analysed up to that stop, which the record names.
    for name in sorted(tvm.list_models(module=tvm.detection)):
        yield (
            f"torchvision.detection/{name}",
            (lambda name=name: tvm.get_model(name, weights=None, weights_backbone=None)),
            (1, 3, 320, 320),
        )
    for name in sorted(tvm.list_models(module=tvm.video)):
        crop = tvm.get_model_weights(name).DEFAULT.transforms.keywords["crop_size"]
        yield f"torchvision.video/{name}", (lambda name=name: tvm.get_model(name, weights=None)), (1, 3, 16, *crop)


def _timm_input(name):
    import timm

    cfg = timm.get_pretrained_cfg(name)
    return (1, *(getattr(cfg, "input_size", None) or (3, 224, 224)))


def _timm_models(limit):
    import timm

    names = sorted(timm.list_models())
    for name in names[:limit] if limit else names:
        yield f"timm/{name}", (lambda name=name: timm.create_model(name, pretrained=False)), _timm_input(name)


# The families whose convolutions become dilated at output stride 8 (timm's ResNet class
# carries ResNeSt too; ResNetV2 takes the same argument).
OS8_MODULES = ("resnet", "resnest", "resnetv2")


def _timm_os8_models():
    import timm

    for module in OS8_MODULES:
        for name in sorted(timm.list_models(module=module)):
            yield f"timm-os8/{name}", functools.partial(_os8_model, name), _timm_input(name)


def _os8_model(name: str):
    import timm

    return timm.create_model(name, pretrained=False, output_stride=8)


def _what_was_followed(view, coverage) -> dict:
    """How the model was captured, how many convolutions have symbolic sizes, and where a
    capture stopped (a detector keeping the boxes its data decides)."""
    trace = view.analysis.trace
    out = {"capture": trace.method if trace is not None else None}
    if trace is not None and trace.stopped is not None:
        code, why, site = trace.stopped
        where = f"{os.path.basename(site.path)}:{site.line}" if site is not None else "?"
        out["stopped"] = f"{code} ({where}): {why}"
    if coverage is not None:
        out.update(convs=coverage.every_size + coverage.example_only, symbolic_convs=coverage.every_size)
        if coverage.unchecked:  # past a stop, or never called
            out["unchecked_convs"] = coverage.unchecked
    return out


def analyse(name, factory, shape, verify: bool = True) -> dict:
    from convlint import common, engine, load, suppress

    start = time.perf_counter()
    record = {"model": name, "input": list(shape)}
    try:
        model = load.build(load.Candidate(name, "", 0, factory))
    except Exception as exc:
        record.update(status="failed", reason=f"build: {common.describe(exc)}")
        return record
    # One analysis gives the findings and the view the record reads, as `convlint check` runs it.
    rules = [r for r in engine.all_rules()[0] if r.check is not None]
    outcome = engine.analyse_model(model, [shape], rules=rules, name=name, path="<zoo>", line=1)
    view, findings = outcome.view, suppress.visible(outcome.findings)
    analysis = view.analysis
    leaves = dict(analysis.trace.leaves) if analysis.trace else {}
    # the view's own count, so a functional conv3d counts as a layer does
    coverage = view.coverage if analysis.sizes is not None else None
    if analysis.error or (analysis.sizes is not None and analysis.sizes.error):
        status = "failed"
        record["reason"] = analysis.error or common.describe(analysis.sizes.error[1])
    else:
        status = "leaves" if leaves else "full"
    records = [{"code": f.code, "severity": f.severity, "module": f.module, "message": f.message} for f in findings]
    record.update(status=status, leaves=leaves, findings=records, **_what_was_followed(view, coverage))
    record["seconds"] = round(time.perf_counter() - start, 3)
    too_large = sum(p.numel() for p in model.parameters()) > VERIFY_MAX_PARAMETERS
    if analysis.sizes is not None and view.domain.symbols and len(view.input_shapes) == 1:
        # the statement always: a later run carries this run's real-model checks over by it (--checks-from)
        record["domain"] = {"statement": str(view.domain), "exact": view.domain.exact}
        if verify and not too_large:
            record["domain"] = _domain_agreement(name, view.domain, factory, shape)
    if verify:
        _verify_warnings(records, factory, shape, analysis, too_large)
    return record


def _verify_warnings(findings: list, factory, shape, analysis, too_large: bool) -> None:
    """Each CVL302's failing input run on the real model (random weights, CPU)."""
    symbols = [str(s) for s in (analysis.sizes.symbols if analysis.sizes is not None else ())]
    outcomes: dict = {}  # one real run per distinct failing input
    for finding in findings:
        if finding["code"] != "CVL302":
            continue
        if too_large:
            finding["verified"] = (
                f"not run: over {VERIFY_MAX_PARAMETERS:.0e} parameters, too large to build on this machine"
            )
            continue
        failing = _failing_shape(finding["message"], shape, symbols)
        if failing not in outcomes:
            outcomes[failing] = _run_real(factory, failing)
        finding["verified"] = outcomes[failing]


VERIFY_MAX_PARAMETERS = 1.5e9  # a real build in float32 takes 4 bytes each, per worker


def _domain_agreement(name: str, domain, factory, shape) -> dict:
    """The input domain against the real model (random weights, CPU) at its boundary
    sizes (below and at the layers' bound, at and before the first failure it names, the
    first above the example, the example) and a few random ones: where an exact domain
    says runs or not, and where an inexact one refuses, PyTorch must agree."""
    import random

    said = domain.stated  # worked out once: the check's summary read it already
    symbols, example = list(domain.symbols), [domain.example[s] for s in domain.symbols]
    lead = list(shape[: len(shape) - len(symbols)])
    sizes = {tuple(example)}
    if all(said.lowest.values()):
        low = max(said.lowest.values())
        sizes |= {(low,) * len(symbols), (max(low - 1, 1),) * len(symbols)}
    else:
        low = 1
    for found in (said.first, said.above):
        if found:
            at = tuple(found[s] for s in symbols)
            sizes |= {at, tuple(n - (n != e) for n, e in zip(at, example))}
    rng = random.Random(name)
    top = max(low + 1, int(1.5 * max(example)))
    sizes |= {(rng.randint(low, top),) * len(symbols) for _ in range(3)}
    sizes |= {tuple(rng.randint(low, top) for _ in symbols) for _ in range(2)}
    model = factory().eval()
    checked, agree, decided = [], 0, 0
    for spatial in sorted(s for s in sizes if min(s) >= 1):
        full = (*lead, *spatial)
        predicted = domain.contains(full) if domain.exact else (False if domain.refuses(full) else None)
        real = _run_real(lambda: model, full).startswith("runs")
        checked.append([*spatial, predicted, real])
        if predicted is not None:
            decided += 1
            agree += predicted == real
    return {"statement": str(domain), "exact": domain.exact, "sizes": checked, "decided": decided, "agree": agree}


def _failing_shape(message: str, shape, symbols) -> tuple:
    """The input CVL302 says breaks the model: each named size at its first failing
    value above the example (the smallest one if there is none above)."""
    failing = list(shape)
    fails = message.split("it first fails at ")[-1].split("; ")[0]
    if "(and " not in fails:  # "H = W = 17 (above the example: H = W = 225)", "H = 17, W = 18"
        first, _, above = fails.partition(" (above the example: ")
        sizes = _named_sizes(first)
        sizes.update(_named_sizes(above.rstrip(")")))
    else:  # earlier runs: "H = 17 (and 225, the first size above the example), W = 17"
        found = re.findall(r"(\w+) = (\d+)(?: \(and (\d+), the first size above the example\))?", fails)
        sizes = {symbol: above or smallest for symbol, smallest, above in found}
    for symbol, size in sizes.items():
        failing[2 + symbols.index(symbol)] = int(size)
    return tuple(failing)


def _named_sizes(text: str) -> dict:
    """``H = W = 17, D = 9`` -> {"H": "17", "W": "17", "D": "9"}."""
    sizes = {}
    for chunk in text.split(", "):
        *names, value = [part.strip() for part in chunk.split(" = ")]
        if names and value.isdigit():
            sizes.update({name: value for name in names})
    return sizes


def _run_real(factory, shape) -> str:
    """PyTorch as the oracle: run the real model (random weights, CPU) at ``shape``."""
    import torch

    try:
        model = factory().eval()
        with torch.no_grad():
            model(torch.randn(shape))
    except Exception as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f"{os.sep}torch{os.sep}" not in f.filename]
        where = f" ({os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
        text = (str(exc).splitlines() or [""])[0][:160]
        return f"raises at {list(shape)[2:]}{where}: {type(exc).__name__}: {text}"
    return f"runs at {list(shape)[2:]}"


ZOOS = {"torchvision": _torchvision_models, "timm": lambda limit: _timm_models(limit), "timm-os8": _timm_os8_models}


class Timeout(BaseException):
    """Not an Exception: convlint's own handlers (a rule that crashes is a CVL902) must
    not swallow it and go on past the time limit."""


def _on_alarm(signum, frame):
    raise Timeout()


RECYCLE = 3  # a worker's exit code after --max-models models: start a fresh one


def _done(path) -> tuple[set, set]:
    """Models with a record in a worker's file, and those only started (the process
    died while analysing them)."""
    finished, started = set(), set()
    if path and os.path.exists(path):
        with open(path) as fh:
            for line in fh:
                if line.strip():
                    record = json.loads(line)
                    (started if record["status"] == "started" else finished).add(record["model"])
    return finished, started - finished


def _forget_unfinished(path) -> None:
    """Drop the "started" lines of models with no record: at the start of a run, they
    are where an earlier run was stopped, to be analysed again (within a run, the same
    lines say a worker died on that model)."""
    if not os.path.exists(path):
        return
    with open(path) as fh:
        lines = [json.loads(line) for line in fh if line.strip()]
    finished = {r["model"] for r in lines if r["status"] != "started"}
    kept = [r for r in lines if r["status"] != "started" or r["model"] in finished]
    with open(path, "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in kept)


def run(zoos, limit, only, shard, timeout, out_path=None, verify=True, names=None, max_models=0) -> list[dict]:
    """Analyse this shard's models one by one; each record goes to ``out_path`` as a JSON
    line at once, so a run that is stopped keeps what it has, and a worker started again
    on the same file goes on where the last one stopped."""
    signal.signal(signal.SIGALRM, _on_alarm)
    index, count = shard
    finished, died = _done(out_path)
    out = open(out_path, "a") if out_path else None
    records, position, analysed = [], 0, 0
    for zoo in zoos:
        source = ZOOS[zoo](limit) if zoo == "timm" else ZOOS[zoo]()
        for name, factory, shape in source:
            if (only and only not in name) or (names is not None and name not in names):
                continue
            position += 1
            if position % count != index or name in finished:
                continue
            if max_models and analysed >= max_models:
                sys.exit(RECYCLE)  # memory grows over hundreds of models: a fresh process goes on
            analysed += 1
            if name in died:
                record = {
                    "model": name,
                    "status": "crashed",
                    "reason": "the worker process died while analysing it (out of memory?)",
                }
            else:
                if out:
                    out.write(json.dumps({"model": name, "status": "started"}) + "\n")
                    out.flush()
                signal.alarm(timeout)
                try:
                    record = analyse(name, factory, shape, verify)
                except Timeout:
                    record = {"model": name, "status": "timeout", "reason": f"over {timeout} s"}
                except Exception as exc:  # a crash of convlint itself: the zoo's whole point is to find these
                    record = {"model": name, "status": "crashed", "reason": f"{type(exc).__name__}: {exc}"}
                finally:
                    signal.alarm(0)
            records.append(record)
            if out:
                out.write(json.dumps(record) + "\n")
                out.flush()
            codes = collections.Counter(f["code"] for f in record.get("findings", []))
            print(
                f"{record['status']:7} {name:60} {record.get('symbolic_convs', 0)}/{record.get('convs', 0)} symbolic  {dict(codes)}  {record.get('reason', '')[:100]}",
                flush=True,
            )
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write every record here (one JSON array)")
    parser.add_argument(
        "--zoo", default="torchvision,timm,timm-os8", help="comma-separated: torchvision, timm, timm-os8"
    )
    parser.add_argument("--limit", type=int, default=0, help="only the first N timm models (0: all)")
    parser.add_argument("--only", help="substring of the model names to run")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per model")
    parser.add_argument("--markdown", help="write the summary page (docs/zoo.md) here")
    parser.add_argument("--from-json", help="no run: read the records of an earlier --json")
    parser.add_argument(
        "--rerun",
        help="run again every model of this --json that was not clean (not analysed fully, or with findings) or took"
        f" over {SLOW:.0f} s, and the models it does not have, and merge",
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="do not run the real model where CVL302 says it breaks"
    )
    parser.add_argument(
        "--max-models", type=int, default=100, help="with --jobs: a fresh worker process after this many models"
    )
    parser.add_argument(
        "--keep",
        help="with --jobs: keep the workers' records in this directory; a run stopped midway goes on from them when started again with it",
    )
    parser.add_argument(
        "--checks-from",
        help="an earlier --json run with the real-model checks: carry them over to the models whose warnings and"
        " domain statement are word for word the same (those checks take hours; with --no-verify the analysis minutes)",
    )
    parser.add_argument(
        "--commit", help="the convlint commit the records are of, for --markdown (default: this checkout's)"
    )
    parser.add_argument("--shard", help=argparse.SUPPRESS)  # "i/n", set for the workers
    parser.add_argument("--jsonl", help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    zoos = [z for z in args.zoo.split(",") if z]
    unknown = set(zoos) - set(ZOOS)
    if unknown:
        parser.error(f"unknown zoo: {', '.join(sorted(unknown))}")
    if args.from_json:
        with open(args.from_json) as fh:
            records = json.load(fh)
    elif args.rerun and not args.shard:
        with open(args.rerun) as fh:
            merged = {r["model"]: r for r in json.load(fh)}
        fresh = (
            _parallel(args)
            if args.jobs > 1
            else run(zoos, args.limit, args.only, (0, 1), args.timeout, None, not args.no_verify, _to_rerun(args.rerun))
        )
        merged.update({r["model"]: r for r in fresh})
        records = list(merged.values())
    elif args.jobs > 1 and not args.shard:
        records = _parallel(args)
    else:
        shard = tuple(int(part) for part in args.shard.split("/")) if args.shard else (0, 1)
        recycle = args.max_models if args.shard else 0  # only a supervised worker may stop early
        records = run(
            zoos,
            args.limit,
            args.only,
            shard,
            args.timeout,
            args.jsonl,
            not args.no_verify,
            _to_rerun(args.rerun),
            recycle,
        )
    if args.checks_from and not args.shard:
        with open(args.checks_from) as fh:
            carried = carry_checks(records, json.load(fh))
        print(f"real-model checks carried over from {args.checks_from} for {carried} models", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(sorted(records, key=lambda r: r["model"]), fh, indent=1)
    if args.markdown:
        records = sorted(records, key=lambda r: r["model"])
        with open(args.markdown, "w") as fh:
            fh.write(markdown(records, _versions(args.commit)))
        update_readme(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md"), records)
    if not args.shard:
        print(summary(records))


def carry_checks(records: list, earlier: list) -> int:
    """The real-model checks of an earlier run, put in the records whose warning (code and
    message) or domain statement (and exactness) is word for word the earlier one's: the
    same model, the same failing input, the same boundary sizes, so the same real runs.
    How many models got some."""
    before = {r["model"]: r for r in earlier}
    carried = 0
    for record in records:
        old = before.get(record["model"])
        if old is None:
            continue
        verified = {(f["code"], f["message"]): f["verified"] for f in old.get("findings", []) if "verified" in f}
        got = False
        for finding in record.get("findings", []):
            key = (finding["code"], finding["message"])
            if "verified" not in finding and key in verified:
                finding["verified"], got = verified[key], True
        new_domain, old_domain = record.get("domain"), old.get("domain")
        if new_domain and old_domain and "decided" not in new_domain and "decided" in old_domain:
            if (new_domain["statement"], new_domain["exact"]) == (old_domain["statement"], old_domain["exact"]):
                record["domain"], got = dict(old_domain), True
        if got:
            record["checks_carried"] = True
            carried += 1
    return carried


def _versions(commit=None) -> str:
    from importlib import metadata

    if commit is None:
        here = os.path.dirname(os.path.abspath(__file__))
        git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True)
        commit = git.stdout.strip() if git.returncode == 0 else None
    found = [f"convlint {commit}"] if commit else []
    for package in ("torch", "torchvision", "timm"):
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


SLOW = 30.0  # seconds: a clean model this slow is run again too (is it still?)


class _Rerun:
    """The models an earlier run leaves to run again: not clean, slow, or not in it (a
    model the zoo lists now)."""

    def __init__(self, records: list) -> None:
        self.done = {r["model"] for r in records if r["status"] == "full" and not r.get("findings")}
        self.done -= {r["model"] for r in records if r.get("seconds", 0) > SLOW}

    def __contains__(self, name: str) -> bool:
        return name not in self.done


def _to_rerun(path):
    if not path:
        return None
    with open(path) as fh:
        return _Rerun(json.load(fh))


def _parallel(args) -> list[dict]:
    """Run ``--jobs`` workers on interleaved shards; a worker that exits (recycled, or
    killed) is started again on its shard until the shard is done; gather their lines."""
    with contextlib.ExitStack() as stack:
        tmp = args.keep or stack.enter_context(tempfile.TemporaryDirectory())
        os.makedirs(tmp, exist_ok=True)
        paths = [os.path.join(tmp, f"{index}.jsonl") for index in range(args.jobs)]
        for path in paths:
            _forget_unfinished(path)  # a kept run was stopped there, not killed by its model

        def start(index):
            argv = [
                sys.executable,
                __file__,
                "--zoo",
                args.zoo,
                "--limit",
                str(args.limit),
                "--timeout",
                str(args.timeout),
            ]
            argv += ["--shard", f"{index}/{args.jobs}", "--jsonl", paths[index], "--max-models", str(args.max_models)]
            argv += ["--only", args.only] if args.only else []
            argv += ["--no-verify"] if args.no_verify else []
            argv += ["--rerun", args.rerun] if args.rerun else []
            return subprocess.Popen(argv)

        def progress(index):
            return sum(len(part) for part in _done(paths[index]))

        running = {index: start(index) for index in range(args.jobs)}
        seen = {index: -1 for index in running}
        while running:
            time.sleep(1)
            for index, process in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                if code == 0 or (code != RECYCLE and progress(index) == seen[index]):
                    del running[index]  # done, or dies before getting anywhere
                else:  # recycled, or died (the model it was on is recorded as crashed)
                    seen[index] = progress(index)
                    running[index] = start(index)
        records = []
        for path in paths:
            if os.path.exists(path):
                with open(path) as fh:
                    records += [r for r in map(json.loads, filter(str.strip, fh)) if r["status"] != "started"]
    return records


def _zoo_of(record) -> str:
    return record["model"].split("/", 1)[0]


def _fully_symbolic(record) -> bool:
    """Analysed (fully or with leaves), and every convolution has symbolic sizes."""
    return record["status"] in ("full", "leaves") and record.get("symbolic_convs") == record.get("convs")


def summary(records) -> str:
    total = len(records)
    by_status = collections.Counter(r["status"] for r in records)
    full_symbolic = sum(map(_fully_symbolic, records))
    codes = collections.Counter(f["code"] for r in records for f in r.get("findings", []))
    errors = sum(1 for r in records for f in r.get("findings", []) if f["severity"] == "error")
    return "\n".join(
        [
            f"models: {total}; " + ", ".join(f"{k}: {v}" for k, v in sorted(by_status.items())),
            f"symbolic sizes for every convolution: {full_symbolic}/{total} ({100 * full_symbolic / max(total, 1):.1f}%)",
            f"findings by code: {dict(sorted(codes.items()))}; error-severity findings: {errors}",
            _agreement(records),
        ]
    )


def _agreement(records) -> str:
    """``the input domain agrees with PyTorch at 412/412 sizes decided, in 115 models``."""
    checked = [r["domain"] for r in records if "decided" in r.get("domain", {})]  # the checked ones
    decided = sum(d["decided"] for d in checked)
    agree = sum(d["agree"] for d in checked)
    return f"the input domain agrees with PyTorch at {agree}/{decided} sizes it decides, in {len(checked)} models"


README_START, README_END = "<!-- zoo -->", "<!-- /zoo -->"


def update_readme(path: str, records) -> None:
    """Put the table between the README's zoo markers."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    head, rest = text.split(README_START, 1)
    _old, tail = rest.split(README_END, 1)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"{head}{README_START}\n{table(records)}\n{README_END}{tail}")


def _condition(message: str) -> str:
    """ "H % 8 and W % 8 must be in {0, 5, 6, 7}" out of a CVL302 message."""
    head = message.split("; it first fails", 1)[0]
    if "every input size (" in head:  # earlier runs: the size maps in parentheses, then ": "
        return head.split("): ", 1)[-1]
    return head.split("every input size", 1)[-1].split(": ", 1)[-1]


def table(records) -> str:
    """One row per zoo and one for all: the table the README shows."""
    lines = [
        "| zoo | models | analysed fully | with leaves | captured by execution² | failed | every conv symbolic | findings by code | errors¹ | median time |"
    ]
    lines += ["|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    order = [
        "torchvision",
        "torchvision.segmentation",
        "torchvision.detection",
        "torchvision.video",
        "timm",
        "timm-os8",
    ]
    # the same rows in the same order whatever the records' order (a set's order is not)
    zoos = sorted({_zoo_of(r) for r in records}, key=lambda z: (order.index(z) if z in order else len(order), z))
    for zoo in zoos + ["all"]:
        group = [r for r in records if zoo == "all" or _zoo_of(r) == zoo]
        status = collections.Counter(r["status"] for r in group)
        symbolic = sum(map(_fully_symbolic, group))
        codes = collections.Counter(f["code"] for r in group for f in r.get("findings", []))
        errors = sum(
            1 for r in group for f in r.get("findings", []) if f["severity"] == "error" and f["code"] != "CVL901"
        )
        times = sorted(r["seconds"] for r in group if "seconds" in r)
        median = f"{times[len(times) // 2]:.2f} s" if times else "-"
        found = ", ".join(f"{c}: {n}" for c, n in sorted(codes.items())) or "none"
        lines.append(
            f"| {'**all**' if zoo == 'all' else zoo} | {len(group)} | {status['full']} | {status['leaves']} | "
            f"{sum(r.get('capture') == 'execution' for r in group)} | "
            f"{status['failed'] + status['crashed'] + status['timeout']} | {symbolic} ({100 * symbolic / max(len(group), 1):.1f}%) | "
            f"{found} | {errors} | {median} |"
        )
    lines += [
        "",
        '¹ error-severity findings, but for CVL901 ("cannot be traced"), which the failed column counts; the time is per model: build on meta, analyse, check.',
        "² torch.fx could not follow the model's forward whole, and running it on meta tensors recorded it (counted among the fully analysed).",
    ]
    return "\n".join(lines)


def markdown(records, versions: str) -> str:
    """docs/zoo.md: the table per zoo, every warning with the real run behind it, and
    every model that is not fully symbolic, with why."""
    lines = [
        "# convlint on the model zoos",
        "",
        f"Generated by `bench/zoo.py --markdown` from `bench/zoo.json` ({versions}).",
        "",
    ]
    carried = sum(1 for r in records if r.get("checks_carried"))
    if carried:
        lines += [
            f"The real-model checks of {carried} models (each warning's failing input, the input domain's",
            "boundary sizes) are carried over from an earlier run that made them (`--checks-from`): their",
            "warnings and domain statements are word for word the ones that run checked.",
            "",
        ]
    lines += table(records).splitlines()
    lines += ["", "## Warnings, each checked on the real model", ""]
    lines += [
        "Every CVL302 names an input size where a merge breaks; the zoo run builds the real model",
        '(random weights, CPU) and runs it at that size. "raises" means the warning is true.',
        "",
    ]
    lines += [
        "| model | findings | what the merges need (CVL302) | where it breaks (real PyTorch) |",
        "|---|---|---|---|",
    ]
    for r in records:
        warned = [f for f in r.get("findings", []) if f["severity"] == "warning"]
        if warned:
            codes = collections.Counter(f["code"] for f in warned)
            needs = sorted({_condition(f["message"]) for f in warned})
            outcomes = sorted({f.get("verified", "not run") for f in warned})
            lines.append(
                f"| {r['model']} | {', '.join(f'{c} x{n}' for c, n in sorted(codes.items()))} | {'<br>'.join(needs)} | {'<br>'.join(outcomes)} |"
            )
    lines += ["", "## The input domain, checked on the real model", ""]
    lines += [
        "For each model checked on the real model, its input domain (what every message and",
        "`convlint shapes` state) is run at its boundary sizes (the layers' bound and one below, the",
        "first failure it names and one before, the first above the example, the example) and five",
        "random ones; an exact domain decides every size, an inexact one the sizes it refuses.",
        f"Overall: {_agreement(records)}.",
        "",
        "| model | statement | exact | sizes decided | agree |",
        "|---|---|---|---:|---:|",
    ]
    for r in records:
        if "decided" in r.get("domain", {}):  # checked on the real model (a --no-verify run states it only)
            d = r["domain"]
            statement = d["statement"].replace("|", "\\|")
            lines.append(f"| {r['model']} | {statement[:160]} | {d['exact']} | {d['decided']} | {d['agree']} |")
    lines += ["", "## Not fully symbolic", ""]
    lines += ["| model | status | convolutions symbolic | why |", "|---|---|---:|---|"]
    for r in records:
        if not _fully_symbolic(r):
            why = r.get("reason") or "; ".join(f"`{k}`: {v}" for k, v in list(r.get("leaves", {}).items())[:2])
            lines.append(
                f"| {r['model']} | {r['status']} | {r.get('symbolic_convs', 0)}/{r.get('convs', 0)} | {why[:200]} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
