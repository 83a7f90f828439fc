"""convlint: a static shape checker for PyTorch convolutions.

Importing this package does not import torch; ``check`` and ``assert_clean`` do.
"""

from __future__ import annotations

from typing import Optional, Sequence

from convlint.common import VERSION as __version__

__all__ = ["InputSizeError", "assert_clean", "check", "domain", "fit", "guard", "same", "shapes", "__version__"]


def __dir__() -> list:
    """The public API, not what the module imported to write it (``Optional``, ``annotations``)."""
    return sorted(__all__)


def same(module):
    """Declare that ``module`` (a layer or a whole block) keeps its spatial size.

    Returns the module, so it can wrap a constructor call:
    ``self.block = convlint.same(nn.Sequential(...))``.
    """
    from convlint.intent import mark

    return mark(module)


def _built(model, args: Sequence = (), kwargs: Optional[dict] = None):
    """An instance as given; a class or factory called with ``args``/``kwargs`` on meta."""
    import functools

    import torch.nn as nn

    from convlint import load

    if isinstance(model, nn.Module):
        if args or kwargs:
            raise TypeError("args and kwargs are for a class or a factory, not for a model already built")
        return model
    required = load.required_arguments(model)
    if required and not args and not kwargs:  # as the CLI's CVL904 says it, with the API's way to give them
        name = getattr(model, "__name__", repr(model))
        kind = "constructor" if isinstance(model, type) else "factory"
        raise TypeError(
            f"{name}'s {kind} needs arguments ({', '.join(p.name for p in required)}), which convlint does not "
            f"guess; pass them: args=(...) and/or kwargs={{...}}, as in convlint.check({name}, input_shape, args=(...))"
        )
    factory = functools.partial(model, *args, **(kwargs or {})) if args or kwargs else model
    return load.build(load.Candidate(getattr(model, "__name__", repr(model)), "", 0, factory))


def _shapes(input_shape) -> tuple:
    shapes = tuple(input_shape)
    return (shapes,) if shapes and isinstance(shapes[0], int) else shapes


def check(
    model,
    input_shape: Sequence[int] | Sequence[Sequence[int]] = (),
    *,
    same: Sequence[str] = (),
    args: Sequence = (),
    kwargs: Optional[dict] = None,
    run_every_op: bool = False,
) -> list:
    """Check a model and return its findings (``convlint.finding.Finding``).

    ``model`` is an ``nn.Module`` instance, or a class or callable that builds one, called
    with ``args`` and ``kwargs`` (``convlint.check(UNet, args=(3, 2))``). Pass the class for
    exact source locations: convlint then builds it on the meta device and records where
    each layer was constructed. ``input_shape`` is one shape, or one shape per ``forward``
    input; empty to infer it.
    """
    import sys

    from convlint import engine, sites

    shapes = _shapes(input_shape)
    model = _built(model, args, kwargs)
    path = line = None
    if type(model).__module__.startswith("torch."):
        # A bare torch container has no source of the user's: point at this call instead.
        caller = sites.frame_site(sys._getframe(1))
        path, line = (caller.path, caller.line) if caller else (None, None)
    options = engine.Options(same=tuple(same), run_every_op=run_every_op)
    return engine.check_model(model, shapes, options=options, path=path, line=line)


def assert_clean(
    model,
    input_shape: Sequence[int] | Sequence[Sequence[int]] = (),
    *,
    same: Sequence[str] = (),
    select: Sequence[str] = (),
    ignore: Sequence[str] = (),
    args: Sequence = (),
    kwargs: Optional[dict] = None,
    run_every_op: bool = False,
) -> None:
    """A test-suite gate: raise ``AssertionError`` listing the findings, as
    ``convlint check`` prints them, if ``model`` has any (after ``select``/``ignore``)::

        def test_unet_keeps_its_sizes():
            convlint.assert_clean(UNet, input_shape=(1, 3, 256, 256))
    """
    from convlint import engine, report

    findings = check(model, input_shape, same=same, args=args, kwargs=kwargs, run_every_op=run_every_op)
    findings = engine.visible(findings, select, ignore)
    if findings:
        raise AssertionError(
            f"convlint found {len(findings)} problem{'s' * (len(findings) != 1)}:\n" + report.text(findings)
        )


def shapes(
    model,
    input_shape: Sequence[int] | Sequence[Sequence[int]] = (),
    *,
    args: Sequence = (),
    kwargs: Optional[dict] = None,
    run_every_op: bool = False,
) -> dict:
    """The shapes report as data: ``{"layers": [...], "requirements": [...]}``, one row per
    layer in execution order (settings, symbolic and concrete size, receptive field, jump),
    and what the model needs of its input, as ``convlint shapes --format json`` gives it."""
    from convlint import report

    return _analysed(model, input_shape, args, kwargs, run_every_op, lambda view: {
        "layers": report.shape_rows(view), "requirements": report.requirements(view)
    })  # fmt: skip


def domain(
    model,
    input_shape: Sequence[int] | Sequence[Sequence[int]] = (),
    *,
    args: Sequence = (),
    kwargs: Optional[dict] = None,
    run_every_op: bool = False,
):
    """The input sizes at which ``model`` runs (a ``convlint.input_domain.Domain``):
    ``contains(shape)`` is True exactly when the model runs at that input shape (batch and
    channels as in the example), ``exact`` says whether that is the whole truth (False
    where part of the model was followed at the example size only), ``str()`` states it
    as every report does (``H, W multiples of 16: ...``)."""
    return _analysed(model, input_shape, args, kwargs, run_every_op, lambda view: view.domain)


def _analysed(model, input_shape, args, kwargs, run_every_op: bool, read):
    """``read(view)`` of the model analysed at ``input_shape`` (built as ``_built`` does)."""
    from convlint import engine

    with engine.analysing(_built(model, args, kwargs)) as meta:
        view, _, _ = engine.build_view(meta, _shapes(input_shape), run_every_op=run_every_op)
        return read(view)


def guard(
    model,
    input_shape: Sequence[int] | Sequence[Sequence[int]] = (),
    *,
    run_every_op: bool = False,
):
    """``model`` (an instance, weights and all) with a check at its input: a first input
    whose spatial sizes the model cannot run raises ``convlint.InputSizeError`` (a
    ``ValueError``) naming the rule they break, where the model would fail and the nearest
    sizes that run; every other input passes untouched. The model is analysed once, here,
    on a copy on the meta device (``input_shape`` as for ``convlint.domain``); each size is
    then decided once. ``model.convlint_guard.remove()`` takes the check off::

        model = convlint.guard(UNet(3, 2).eval(), input_shape=(1, 3, 256, 256))
        model(torch.zeros(1, 3, 250, 250))  # InputSizeError: ... needs H, W multiples of 16 ...
    """
    import torch.nn as nn

    from convlint import contract

    if not isinstance(model, nn.Module):
        raise TypeError(f"guard needs a built model (an nn.Module instance), not {type(model).__name__}")
    contract.guardable(model)  # before the analysis, which cannot copy a ScriptModule either
    return contract.guard(model, domain(model, input_shape, run_every_op=run_every_op))


def fit(x, domain):
    """``x`` padded at the end of each spatial dim to the nearest size above at which the
    model of ``domain`` runs, and the crop back (a ``convlint.contract.Fitted``)::

        fitted = convlint.fit(image, convlint.domain(UNet(3, 2), (1, 3, 256, 256)))
        mask = fitted.crop(model(fitted.input))
    """
    from convlint import contract

    return contract.fit(x, domain)


def __getattr__(name: str):
    if name == "InputSizeError":  # torch is imported only when it is asked for
        from convlint.contract import InputSizeError

        return InputSizeError
    raise AttributeError(f"module 'convlint' has no attribute {name!r}")
