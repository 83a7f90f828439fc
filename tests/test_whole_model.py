"""Whole-model analysis against real PyTorch: the smallest input a model runs on
(CVL401/CVL402's boundary) and the receptive field (a gradient probe)."""

import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convlint import engine
from convlint.report import receptive

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LAYER = st.tuples(
    st.sampled_from(["conv", "conv", "maxpool", "avgpool", "reflect", "circular", "reflect_conv"]),
    st.integers(1, 5),  # kernel
    st.integers(1, 3),  # stride
    st.integers(0, 3),  # padding
    st.integers(1, 3),  # dilation
)


def build(specs):
    layers = []
    for kind, k, s, p, d in specs:
        if kind == "conv":
            layers.append(nn.Conv1d(1, 1, k, stride=s, padding=p, dilation=d))
        elif kind == "reflect_conv":
            layers.append(nn.Conv1d(1, 1, k, stride=s, padding=p, dilation=d, padding_mode="reflect"))
        elif kind == "maxpool":
            layers.append(nn.MaxPool1d(k, stride=s, padding=min(p, k // 2), dilation=d))
        elif kind == "avgpool":
            layers.append(nn.AvgPool1d(k, stride=s, padding=min(p, k // 2)))
        elif kind == "reflect":
            layers.append(nn.ReflectionPad1d(p))
        else:
            layers.append(nn.CircularPad1d(p))
    return nn.Sequential(*layers)


def runs(model, n):
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, n))
        return True
    except RuntimeError:
        return False


@SETTINGS
@given(st.lists(LAYER, min_size=1, max_size=5))
def test_predicted_smallest_input_agrees_with_pytorch(run_every_op, specs):
    model = build(specs)
    with engine.analysing(model) as meta:
        view, _, _ = engine.build_view(meta, [(1, 1, 4096)], run_every_op=run_every_op)
        predicted = view.smallest_input(view.symbols[0])
    assert predicted is not None
    assert runs(model, predicted), (model, predicted)
    if predicted > 1:
        assert not runs(model, predicted - 1), (model, predicted)


PROBE_LAYER = st.tuples(
    st.sampled_from(["conv", "conv", "pool"]),
    st.integers(1, 5),
    st.integers(1, 3),
    st.integers(1, 3),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PROBE_LAYER, min_size=1, max_size=4))
def test_receptive_field_and_jump_match_a_gradient_probe(run_every_op, specs):
    layers = []
    for kind, k, s, d in specs:
        if kind == "conv":
            conv = nn.Conv2d(1, 1, k, stride=s, dilation=d, bias=False)
            nn.init.constant_(conv.weight, 1.0)  # positive weights: no gradient cancels out
            layers.append(conv)
        else:
            layers.append(nn.AvgPool2d(k, stride=s))
    model = nn.Sequential(*layers).double()
    size = 160
    with engine.analysing(model) as meta:
        view, _, _ = engine.build_view(meta, [(1, 1, size, size)], run_every_op=run_every_op)
        fields = receptive.receptive_fields(view)
    out_node = [n for n in view.sizes.graph_module.graph.nodes if n.op == "output"][0].all_input_nodes[0]
    (rf_h, jump_h), (rf_w, jump_w) = fields[out_node]
    x = torch.rand(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    try:
        if min(model(x).shape[2:]) < 2:
            return
    except RuntimeError:
        return  # too deep for the probe's input: nothing to compare

    def touched_rows(i):
        if x.grad is not None:
            x.grad = None
        model(x)[0, 0, i, 0].backward()
        rows = (x.grad[0, 0].abs().sum(dim=1) > 0).nonzero().flatten()
        return rows.min().item(), rows.max().item()

    first, last = touched_rows(0)
    assert last - first + 1 == rf_h
    second, _ = touched_rows(1)
    assert second - first == jump_h
    assert (rf_w, jump_w) == (rf_h, jump_h)
