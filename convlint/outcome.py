"""What a run found, as records: ``Result`` for a run over targets, ``Outcome`` for one
model. The CLI, the server's worker and the API read them; the engine fills them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class Result:
    findings: list = field(default_factory=list)
    models: int = 0
    files: int = 0
    problems: list = field(default_factory=list)  # plugin load problems
    # convolutions checked for every input size, at the example size only, not at all
    coverage: list = field(default_factory=lambda: [0, 0, 0])
    skipped: int = 0  # models without a convolution, pooling or padding layer
    notes: list = field(default_factory=list)  # what -v says: models skipped and why
    unchecked: list = field(default_factory=list)  # load.Unchecked: classes that need arguments
    used: set = field(default_factory=set)  # classes of every module built in the run
    configured: list = field(default_factory=list)  # objects the targets named
    # (path, (line, column, source)) of each file not imported for running a script (CVL905),
    # and the files targets named on purpose (those are imported)
    scripts: list = field(default_factory=list)
    named: set = field(default_factory=set)
    checked_files: set = field(default_factory=set)  # files that define a model the run checked
    usage: dict = field(default_factory=dict)  # Target -> project files its model ran
    views: list = field(default_factory=list)  # the analysed models, when asked to keep them
    # (model, its input domain in words) for each checked model whose domain is more than
    # a lower bound per dim: what a pass covers
    domains: list = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    """One model through the rules: its findings (fixes not yet planned), the analysed
    model (for hover and the shapes report), how its convolutions were checked (every
    size, example only, not at all), and the modules each constructor call built (what
    fix planning needs)."""

    findings: list
    view: Optional[Any]
    coverage: tuple
    calls: dict
    checked: bool  # False: the model was not checked (CVL904)
    domain: Optional[str] = None  # the input sizes it runs for, when more than a lower bound per dim
