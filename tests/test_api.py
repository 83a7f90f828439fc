"""The Python API: convlint.check and convlint.same, for users' own tests."""

import torch
import torch.nn as nn

import convlint
from convlint import load


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = convlint.same(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, dilation=3, padding=1)))  # fmt: skip

    def forward(self, x):
        return self.block(x)


def test_check_a_class_builds_it_on_meta_and_points_at_the_constructor_calls(run_every_op):
    findings = convlint.check(Net, input_shape=(1, 3, 32, 32), run_every_op=run_every_op)
    assert [(f.code, f.module) for f in findings] == [("CVL103", "block"), ("CVL201", "block.1")]
    f = findings[0]
    assert f.path.endswith("test_api.py") and f.line == 13
    assert "H -> H - 4" in f.message and "`block.1` (H -> H - 4, W -> W - 4)" in f.message


def test_check_an_instance_leaves_it_untouched(run_every_op):
    model = Net().train()
    weight = model.block[0].weight.detach().clone()
    findings = convlint.check(model, input_shape=(1, 3, 20, 20), run_every_op=run_every_op)
    assert [f.code for f in findings] == ["CVL103", "CVL201"]
    assert model.training and model.block[0].weight.device.type == "cpu"
    assert torch.equal(model.block[0].weight, weight)


def test_same_marks_and_returns_the_module(run_every_op):
    conv = nn.Conv2d(1, 1, 5, padding=1)
    assert convlint.same(conv) is conv
    findings = convlint.check(nn.Sequential(conv), input_shape=(1, 1, 9, 9), run_every_op=run_every_op)
    assert [f.code for f in findings] == ["CVL101"]
    assert findings[0].message.endswith("use padding=2")


def test_models_are_built_on_the_meta_device(run_every_op):
    model = load.build(load.Candidate("Net", __file__, 1, Net, Net))
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_input_shape_is_inferred_from_the_first_convolution(run_every_op):
    class Audio(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(2, 4, 7, padding=2)  # convlint: same

        def forward(self, x):
            return self.conv(x.relu())

    (finding,) = convlint.check(Audio, run_every_op=run_every_op)
    assert finding.code == "CVL101"
    assert "L -> L - 2" in finding.message and "1024 -> 1022" in finding.message


def test_a_bare_torch_container_points_at_the_call_to_check(run_every_op):
    model = nn.Sequential(nn.Sequential(convlint.same(nn.Conv2d(1, 1, 5, padding=1))))
    findings = convlint.check(model, input_shape=(1, 1, 9, 9), run_every_op=run_every_op)  # this line
    assert findings[0].path.endswith("test_api.py")
    source = open(__file__).read().splitlines()
    assert source[findings[0].line - 1].endswith("# this line")


def test_assert_clean_passes_a_clean_model_and_fails_with_the_findings_as_text(run_every_op):
    convlint.assert_clean(
        nn.Sequential(nn.Conv2d(3, 3, 3, padding=1)), input_shape=(1, 3, 8, 8), run_every_op=run_every_op
    )
    try:
        convlint.assert_clean(Net, input_shape=(1, 3, 32, 32), run_every_op=run_every_op)
    except AssertionError as exc:
        text = str(exc)
    else:
        raise AssertionError("assert_clean did not fail")
    assert text.startswith("convlint found 2 problems:\n")
    assert "test_api.py:13:" in text and "CVL103 block `block` (Sequential) does not keep its size" in text
    convlint.assert_clean(Net, input_shape=(1, 3, 32, 32), ignore=["CVL103", "CVL2"], run_every_op=run_every_op)


def test_shapes_api_gives_rows_and_requirements(run_every_op):
    stack = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3))
    report = convlint.shapes(stack, input_shape=(1, 3, 64, 64), run_every_op=run_every_op)
    assert [r["type"] for r in report["layers"]] == ["input", "Conv2d", "MaxPool2d", "Conv2d"]
    last = report["layers"][-1]
    assert last["size"][2:] == ["floor((H - 3)/4) - 1", "floor((W - 3)/4) - 1"] and last["shape"] == [1, 8, 14, 14]
    assert last["receptive_field"] == [13, 13] and last["jump"] == ["4", "4"]  # 3, then 3 + 1*2, then 5 + 2*4
    assert report["requirements"] == ["runs for H, W >= 11"]
    stack(torch.zeros(1, 3, 11, 11))  # PyTorch agrees: 11 runs, 10 does not
    try:
        stack(torch.zeros(1, 3, 10, 10))
    except RuntimeError:
        pass
    else:
        raise AssertionError("10x10 ran")


def test_a_class_that_needs_arguments_gets_one_clear_error_naming_them_and_args_build_it(run_every_op):
    import pytest  # here: the line numbers of the models above are what other tests read

    class Needs(nn.Module):
        def __init__(self, n_channels, n_classes, bilinear=False):
            super().__init__()
            self.conv = nn.Conv2d(n_channels, n_classes, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    with pytest.raises(TypeError) as raised:
        convlint.assert_clean(Needs, input_shape=(1, 3, 32, 32))
    assert "needs arguments (n_channels, n_classes)" in str(raised.value) and "args=(" in str(raised.value)
    assert raised.value.__context__ is None and raised.value.__cause__ is None  # one error, not two chained
    convlint.assert_clean(Needs, input_shape=(1, 3, 32, 32), args=(3, 2), run_every_op=run_every_op)
    kwargs = {"n_channels": 3, "n_classes": 2}
    convlint.assert_clean(Needs, input_shape=(1, 3, 32, 32), kwargs=kwargs, run_every_op=run_every_op)


def test_a_constructor_that_fails_on_meta_and_on_the_cpu_raises_once():
    import pytest

    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            raise ValueError("no weights here")

    with pytest.raises(ValueError) as raised:
        convlint.check(Broken, (1, 3, 8, 8))
    assert raised.value.__context__ is None


def test_dir_of_the_package_is_its_public_api():
    assert dir(convlint) == sorted(convlint.__all__)
    assert all(callable(getattr(convlint, name)) for name in convlint.__all__ if name != "__version__")


def _decorated(cls):
    return cls


def test_a_model_without_a_site_is_placed_at_its_class_statement_as_inspect_finds_it():
    # The class line is read upwards from its first method (inspect parses the whole file):
    # it must agree with inspect, and give way to it where reading upwards is not certain.
    @_decorated
    class Decorated(nn.Module):
        def forward(self, x):
            return x

    class Nested(nn.Module):
        class Inner(nn.Module):
            pass

        scale = 2

        @staticmethod
        def helper():
            return 1

        def forward(self, x):
            return x

    class NoMethods(nn.Sequential):
        pass

    import inspect  # (not at the top: the tests above pin line numbers in this file)

    from convlint import locate

    for cls in (Net, Decorated, Nested, Nested.Inner, NoMethods):
        place = locate.place_of(cls.__new__(cls), None, None, None)
        assert (place.path, place.line) == (__file__, inspect.getsourcelines(cls)[1]), cls
