"""`padding="same"` with stride > 1: PyTorch refuses it when the layer is built, so this
rule reads the source (libcst) rather than the model, which cannot be instantiated."""

from __future__ import annotations

import re
from typing import Iterator, Optional

from convlint.fix_api import FUNCTION_SIGNATURES, MODULE_SIGNATURES, FixError, argument, read_source
from convlint.rule_api import ERROR, Report, Rule, Site, same_pad_argument

_SAME_LITERAL = re.compile(r"""["']same["']""")
_CONV = {"Conv1d": 1, "Conv2d": 2, "Conv3d": 3, "conv1d": 1, "conv2d": 2, "conv3d": 3}


def _ints(node) -> Optional[tuple[int, ...]]:
    """The value of an int or tuple-of-ints literal."""
    import libcst as cst

    if isinstance(node, cst.Integer):
        return (int(node.value, 0),)
    if isinstance(node, (cst.Tuple, cst.List)) and all(isinstance(e.value, cst.Integer) for e in node.elements):
        return tuple(int(e.value.value, 0) for e in node.elements)
    return None


def _callee(node) -> str:
    import libcst as cst

    func = node.func
    return func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""


def _argument(node, name: str, index: Optional[int]):
    arg = argument(node, name, index)
    return arg.value if arg is not None else None


def _check(path: str) -> Iterator[Report]:
    try:
        source = read_source(path)
        if not _SAME_LITERAL.search(source.text):  # most files: no parse (and no libcst) at all
            return
        wrapper, positions = source.parsed()
    except FixError:
        return  # a file libcst cannot read is reported by its import, if it matters
    import libcst as cst  # 0.2 s: only for a file that says "same"

    for node in _calls(wrapper.module):
        name = _callee(node)
        module_form = name in ("Conv1d", "Conv2d", "Conv3d")
        padding = _argument(node, "padding", _position(name, module_form, "padding"))
        if not (isinstance(padding, cst.SimpleString) and padding.evaluated_value == "same"):
            continue
        stride_arg = _argument(node, "stride", _position(name, module_form, "stride"))
        stride = _ints(stride_arg) if stride_arg is not None else (1,)
        if stride is None or all(s == 1 for s in stride):
            continue
        r = positions[node]
        site = Site(path, r.start.line, r.start.column + 1, r.end.line, r.end.column + 1)
        yield Report(
            f'`{name}` with padding="same" and stride {stride[0] if len(set(stride)) == 1 else stride}: PyTorch '
            f"refuses it {'when the layer is built' if module_form else 'when it is called'} (ValueError); "
            + _advice(node, name, module_form),
            site=site,
        )


def _position(name: str, module_form: bool, parameter: str) -> Optional[int]:
    """Where ``parameter`` sits among a conv call's positional arguments (None: the call is
    not one whose signature is known, so only a keyword counts)."""
    if module_form:
        return MODULE_SIGNATURES["conv"].index(parameter)
    return FUNCTION_SIGNATURES["conv"].index(parameter) if name in _CONV else None


def _calls(module) -> list:
    import libcst as cst

    found = []

    class Visitor(cst.CSTVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            found.append(node)

    module.visit(Visitor())
    return found


def _advice(node, name: str, module_form: bool) -> str:
    """The explicit pad that gives ceil(n/s) for every n: d*(k-1) in all, total//2 before."""
    ndim = _CONV.get(name)
    kernel = _ints(_argument(node, "kernel_size", _position(name, True, "kernel_size")) if module_form else None)
    dilation_arg = _argument(node, "dilation", _position(name, True, "dilation")) if module_form else None
    dilation = (
        (1,) if module_form and dilation_arg is None else _ints(dilation_arg) if dilation_arg is not None else None
    )
    if ndim is None or kernel is None or dilation is None:
        return "pad explicitly (d*(k-1) in all, half before) and set padding=0"
    kernel = kernel * ndim if len(kernel) == 1 else kernel
    dilation = dilation * ndim if len(dilation) == 1 else dilation
    return f"add nn.ZeroPad{ndim}d({same_pad_argument(kernel, dilation)}) before it and set padding=0"


CVL403 = Rule(
    code="CVL403",
    name="strided-same-padding",
    severity=ERROR,
    summary='padding="same" with stride > 1, which PyTorch refuses',
    check_source=_check,
    doc="""\
## What it does
Finds convolutions written with `padding="same"` and a stride above 1, by reading the
source: PyTorch raises `ValueError` when such a layer is built, so the model cannot be
instantiated and no other rule can look at it.

## Why is this bad?
`padding="same"` is only defined at stride 1 in PyTorch (unlike Keras and TensorFlow).

## Example
```python
nn.Conv2d(64, 128, 3, stride=2, padding="same")
```

## Fix
Pad explicitly: `dilation*(kernel-1)` in all, half before (rounded down) and the rest
after, then `padding=0`. That gives `ceil(n/stride)` for every input size:
```python
nn.Sequential(nn.ZeroPad2d((1, 1, 1, 1)), nn.Conv2d(64, 128, 3, stride=2, padding=0))
```
""",
)
