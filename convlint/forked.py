"""A function run in a child process forked from this one, its answer pickled back.

The language server's checks (``convlint.worker``) and ``check --jobs`` (``convlint.jobs``)
run this way: the child starts with everything this process has loaded (torch, the
rules, the user's modules, a built model), none of it imported or pickled again, and a
child that crashes or hangs ends alone. A bare ``os.fork``, not ``multiprocessing``: a
spawned child would import everything again, and a forked one from ``multiprocessing``
closes ``sys.stdin``, whose lock the language server's reader thread holds while it
waits for the editor.
"""

from __future__ import annotations

import gc
import os
import pickle
import select
import signal
import sys
import time
from typing import Any, Callable, Optional

# The pipe ends this process holds to read its children's answers: a child closes the
# ones it inherits (they are its siblings', not its own).
_READ_ENDS: set = set()


class ChildFailed(Exception):
    """The child gave no answer: its job raised (the exception, as text), it ended the
    process (``status``: its exit status), or it ran out of time (``timed_out``)."""

    def __init__(self, message: str, status: Optional[int] = None, timed_out: bool = False) -> None:
        super().__init__(message)
        self.status, self.timed_out = status, timed_out


class Forked:
    """``job(*args)`` running in a child, forked when made, in the calling thread; its
    answer awaited with ``result``, or, several at once, with ``select`` on them (``fileno``),
    ``read`` and ``answer``."""

    def __init__(self, job: Callable[..., Any], *args: Any) -> None:
        self._receive, send = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            _child(job, args, self._receive, send)  # never returns
        os.close(send)
        _READ_ENDS.add(self._receive)
        self._chunks: list = []
        self._open = True

    def fileno(self) -> int:
        """The pipe the answer comes on (for ``select``)."""
        return self._receive

    def read(self) -> bool:
        """Take what the child has sent so far (call when ``select`` says it is readable);
        True once it has sent everything."""
        chunk = os.read(self._receive, 1 << 20)
        if chunk:
            self._chunks.append(chunk)
        return not chunk

    def answer(self) -> Any:
        """After ``read`` said done: what the job returned; ``ChildFailed`` with why
        there is nothing."""
        status = self._reap()
        try:
            raised, value = pickle.loads(b"".join(self._chunks))
        except Exception:  # the child ended before it could answer
            code = os.waitstatus_to_exitcode(status)
            raise ChildFailed(f"the process ended with exit status {code}", status=code) from None
        if raised:
            raise ChildFailed(value)
        return value

    def result(self, timeout: Optional[float] = None) -> Any:
        """Wait for the answer (see ``answer``); a child still running after ``timeout``
        seconds is killed: ``ChildFailed`` saying so."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0)
            ready, _, _ = select.select([self._receive], [], [], left)
            if not ready:
                self.kill()
                raise ChildFailed(f"it did not finish within {timeout:g} s and was stopped", timed_out=True)
            if self.read():
                return self.answer()

    def kill(self) -> None:
        if self._open:
            os.kill(self.pid, signal.SIGKILL)
            self._reap()

    def _reap(self) -> int:
        self._open = False
        os.close(self._receive)
        _READ_ENDS.discard(self._receive)
        return os.waitpid(self.pid, 0)[1]


def _child(job: Callable[..., Any], args: tuple, receive: int, send: int) -> None:
    """The child's life: run the job, send (raised, answer), and leave without running
    the parent's clean-up (its atexit handlers, its open files' buffers)."""
    # What it shares with the parent is frozen: its collections need not walk it, and a
    # collection that did would touch, and so copy, every page of it.
    gc.freeze()
    status = 0
    try:
        for fd in (receive, *_READ_ENDS):
            os.close(fd)
        try:
            answer = (False, job(*args))
        except Exception as exc:  # the job's own failure: said, not a dead child
            answer = (True, f"{type(exc).__name__}: {exc}")
        try:
            data = pickle.dumps(answer)
        except Exception as exc:  # an answer that cannot be pickled is no answer: said
            data = pickle.dumps((True, f"its answer could not be sent back: {type(exc).__name__}: {exc}"))
        with os.fdopen(send, "wb") as out:
            out.write(data)
    except BaseException:
        status = 1
    finally:
        sys.stdout.flush()  # what the job printed: os._exit flushes nothing
        sys.stderr.flush()
        os._exit(status)
