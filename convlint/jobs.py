"""``--jobs``: models analysed in worker processes forked from this one.

The parent imports and builds every model (on meta: small) and keeps them; each child,
forked with all of it loaded (torch, the rules, the user's modules, the built model),
analyses one model and sends back what the run needs: the findings, the coverage, the
domain, the files the model ran, and the modules each constructor call built, as
qualified names. The parent resolves those on its own copy of the model, so fixes are
planned over the same modules as in a serial run, and it takes the answers in the
models' order, so the report is the serial one.
"""

from __future__ import annotations

import os
import pickle
import select
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

from convlint.outcome import Outcome


def default_jobs() -> int:
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass
class _Shipped:
    """A model's analysis as a child sends it: ``Outcome`` without the analysed view,
    its calls as {site key: (site, [(model, qualified name, intent)])}."""

    findings: list
    coverage: tuple
    calls: dict
    checked: bool
    domain: Optional[str]
    recorded: Optional[set]


def _shipped(outcome: Outcome, recorded: Optional[set]) -> _Shipped:
    calls = {
        key: (site, [(b.model, b.qualname, b.intent) for b in built.values()])
        for key, (site, built) in outcome.calls.items()
    }
    return _Shipped(outcome.findings, outcome.coverage, calls, outcome.checked, outcome.domain, recorded)


def _received(shipped: _Shipped, model) -> Outcome:
    """The child's answer as the serial ``Outcome``: the calls' modules found again on the
    parent's copy of the model (the same objects the serial run would hold)."""
    from convlint import registry

    calls = {}
    for key, (site, refs) in shipped.calls.items():
        built = {}
        for name, qualname, intent in refs:
            module = model.get_submodule(qualname)
            built.setdefault(id(module), registry.BuiltModule(name, qualname, module, intent))
        calls[key] = (site, built)
    return Outcome(shipped.findings, None, shipped.coverage, calls, shipped.checked, shipped.domain)


def analysed(
    entries: Sequence[tuple],
    analyse: Callable[[tuple], Outcome],
    failed: Callable[[tuple, str], Outcome],
    jobs: int,
) -> Iterator[tuple[tuple, Outcome]]:
    """(entry, its Outcome) for each of ``entries`` (built_models' tuples: candidate,
    model, shapes, target, recorded files) in their order, ``analyse`` run in ``jobs``
    worker processes, each given the next model (the largest first) when it is done with
    one (their caches warm from model to model). A worker that dies (the model's code ended the process)
    gives ``failed(entry, why)`` and is replaced. The files a worker recorded go into the
    entry's set."""
    workers = [_Worker(entries, analyse) for _ in range(jobs)]
    answers: dict = {}
    # The largest models first (by their modules): the run ends when its longest analysis
    # does, so that one should not start last, beside idle workers.
    order = sorted(range(len(entries)), key=lambda i: -sum(1 for _ in entries[i][1].modules()))
    following = 0  # the next place in ``order`` to hand out
    try:
        for index in range(len(entries)):
            while index not in answers:
                for i, w in enumerate(workers):
                    if w.index is None and following < len(entries):
                        if not w.alive:
                            workers[i] = w = _Worker(entries, analyse)
                        w.give(order[following])
                        following += 1
                busy = [w for w in workers if w.index is not None]
                ready, _, _ = select.select(busy, [], [])
                for w in ready:
                    done = w.take()
                    if done is not None:
                        answers[done[0]] = done[1]
            entry, answer = entries[index], answers.pop(index)
            if isinstance(answer, str):  # the job raised, or the worker died: why
                yield entry, failed(entry, answer)
                continue
            if entry[4] is not None and answer.recorded:
                entry[4].update(answer.recorded)
            yield entry, _received(answer, entry[1])
    finally:
        for w in workers:
            w.stop()


_PARENT_ENDS: set = set()  # the pipe ends this process holds to talk to its workers


class _Worker:
    """A process forked from this one that analyses the models it is given, one at a
    time: an index in (4 bytes), a pickled ``_Shipped`` or the reason it failed out
    (8 bytes of length, then the pickle)."""

    def __init__(self, entries: Sequence[tuple], analyse: Callable[[tuple], Outcome]) -> None:
        orders, self._orders = os.pipe()
        self._answers, answers = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            # Every pipe end the parent holds is closed here: a worker holding another's
            # order pipe open would keep that one from ever seeing the end of its orders.
            for fd in (self._orders, self._answers, *_PARENT_ENDS):
                os.close(fd)
            _serve(orders, answers, entries, analyse)  # never returns
        os.close(orders)
        os.close(answers)
        _PARENT_ENDS.update((self._orders, self._answers))
        self.index: Optional[int] = None  # the model it is on
        self.alive = True
        self._chunks: list = []

    def fileno(self) -> int:
        return self._answers

    def _close(self) -> None:
        for fd in (self._orders, self._answers):
            os.close(fd)
            _PARENT_ENDS.discard(fd)

    def give(self, index: int) -> None:
        self.index = index
        os.write(self._orders, index.to_bytes(4, "little"))

    def take(self) -> Optional[tuple]:
        """Read what came (select said something did): (index, answer) once it is whole,
        the answer a ``_Shipped`` or why there is none; else None."""
        chunk = os.read(self._answers, 1 << 20)
        index = self.index
        if not chunk:  # the worker died on this model
            self.alive, self.index = False, None
            self._close()
            _, status = os.waitpid(self.pid, 0)
            return index, f"the process ended with exit status {os.waitstatus_to_exitcode(status)}"
        self._chunks.append(chunk)
        data = b"".join(self._chunks)
        if len(data) < 8 or len(data) < 8 + int.from_bytes(data[:8], "little"):
            self._chunks = [data]
            return None
        self._chunks, self.index = [], None
        return index, pickle.loads(data[8:])

    def stop(self) -> None:
        if self.alive:
            self._close()  # the end of its orders: the worker leaves
            os.waitpid(self.pid, 0)
            self.alive = False


def _serve(orders: int, answers: int, entries: Sequence[tuple], analyse: Callable[[tuple], Outcome]) -> None:
    """A worker's life: analyse each model it is given, answer, until the orders end."""
    import gc
    import sys

    gc.freeze()  # what it shares with the parent: collections leave those pages uncopied
    status = 0
    try:
        while True:
            order = os.read(orders, 4)
            if len(order) < 4:
                break
            entry = entries[int.from_bytes(order, "little")]
            try:
                answer = _shipped(analyse(entry), entry[4])
            except Exception as exc:  # convlint's own failure on this model: said, the run goes on
                answer = f"{type(exc).__name__}: {exc}"
            data = pickle.dumps(answer)
            os.write(answers, len(data).to_bytes(8, "little"))
            view = memoryview(data)
            while view:
                view = view[os.write(answers, view) :]
    except BaseException:
        status = 1
    finally:
        sys.stdout.flush()  # what the models printed: os._exit flushes nothing
        sys.stderr.flush()
        os._exit(status)
