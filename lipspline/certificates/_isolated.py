"""Run one function in a forked child that can be killed when its wall-clock time is up.

Why a child process: a numerical solver can block inside a single LAPACK call
(NaN input makes some drivers loop, a huge system simply takes long), and no
Python-level check of a deadline runs while C code holds the thread. The only
way to give a caller its answer on time is to run the computation where it can
be killed: a child process, SIGKILLed at the deadline, whose address space and
locks vanish with it.

Why raw ``os.fork`` rather than ``multiprocessing``: certificates are computed
inside Celery prefork workers, which are *daemonic* processes, and
``multiprocessing.Process.start()`` refuses to start children from a daemonic
process ("daemonic processes are not allowed to have children"). A plain fork
has no such rule, needs no pickling of the arguments (the child already holds
them, copy-on-write) and costs a few milliseconds, so the fast path stays fast.
Only the result travels back, pickled, through a pipe.

What the child does and does not do:

* it leaves with ``os._exit`` whatever happens, so the parent's ``atexit``
  handlers, ``finally`` blocks further up the stack and buffered stdio are
  never run or flushed twice (a Celery worker, a test runner or a web server
  would otherwise run its shutdown code in the child);
* it restores the default action of SIGINT, SIGTERM and SIGALRM (the parent's
  Python handlers, e.g. a worker's warm-shutdown handler, make no sense in it)
  and arms ``alarm`` a little after the deadline, so it dies on its own even
  if the parent itself is killed before it can reap it;
* it must not take locks that another parent thread may have held at the time
  of the fork (only the forking thread exists in the child): callers should
  enter any scoped settings (thread counts, caches) *before* calling this.

The message is length-prefixed, so the parent never relies on end-of-file
(another thread forking at the same moment would inherit the pipe's write end
and delay it); the parent also polls the child's status, so a child that dies
without writing is noticed at once. Where ``os.fork`` does not exist the
function runs in-process: failures are reported the same way, but the
deadline cannot then interrupt it.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import select
import signal
import struct
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: seconds the child outlives its deadline before its own alarm kills it (orphan backstop)
_ORPHAN_GRACE_S = 5
#: longest single wait of the parent between checks of the child's status
_POLL_S = 0.05
_HEADER = struct.Struct("!Q")


class DeadlineExceededError(TimeoutError):
    """The function ran past its wall-clock limit; the child was killed and reaped."""

    def __init__(self, time_limit_s: float) -> None:
        super().__init__(f"ran past {time_limit_s:g} s wall clock (process killed)")
        self.time_limit_s = time_limit_s


class IsolatedFailureError(RuntimeError):
    """The function raised, or the child died before sending a result.

    ``error_type`` names the exception class raised in the child (``""`` when
    the child died without one, e.g. killed by a signal).
    """

    def __init__(self, message: str, error_type: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type


def fork_available() -> bool:
    return hasattr(os, "fork")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _child(write_fd: int, time_limit_s: float, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    """Body of the child: never returns (``os._exit``)."""
    code = 1
    try:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
                signal.signal(sig, signal.SIG_DFL)
            if math.isfinite(time_limit_s):
                signal.alarm(max(1, math.ceil(time_limit_s)) + _ORPHAN_GRACE_S)
        except (ValueError, OSError, OverflowError, AttributeError):  # best effort: the parent still kills it
            pass
        try:
            payload = pickle.dumps(("ok", fn(*args, **kwargs)), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # everything goes back to the parent, nothing escapes the child
            detail = f"{type(exc).__name__}: {exc}"
            trace = traceback.format_exc(limit=8)
            payload = pickle.dumps(("error", (type(exc).__name__, detail, trace)))
        _write_all(write_fd, _HEADER.pack(len(payload)) + payload)
        code = 0
    except BaseException:  # noqa: S110 - the exit code tells the parent
        pass
    finally:
        os._exit(code)


def _complete(buffer: bytearray) -> bool:
    """True once the length-prefixed message is entirely in ``buffer``."""
    return len(buffer) >= _HEADER.size and len(buffer) >= _HEADER.size + _HEADER.unpack_from(buffer)[0]


def _drain(fd: int, buffer: bytearray) -> tuple[bool, bool]:
    """Append what the (non-blocking) pipe holds now: (something was read, end of file).

    Never waits for end-of-file: a sibling child forked by another thread may
    hold a copy of the write end for as long as it lives.
    """
    got = False
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return got, False
        if not chunk:
            return got, True
        buffer += chunk
        got = True


def _reap(pid: int, flags: int) -> tuple[bool, int | None]:
    """waitpid that also copes with a parent ignoring SIGCHLD (children then reap themselves)."""
    try:
        done, status = os.waitpid(pid, flags)
    except ChildProcessError:
        return True, None
    return done != 0, status


def _describe_status(status: int | None) -> str:
    if status is None:
        return "ended (status unknown)"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"killed by signal {name}"
    if os.WIFEXITED(status):
        return f"exited with status {os.WEXITSTATUS(status)}"
    return f"status {status}"


def _in_process(fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        raise IsolatedFailureError(f"{type(exc).__name__}: {exc}", type(exc).__name__) from exc


def run_with_deadline(fn: Callable[..., T], *args: Any, time_limit_s: float, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` computed in a forked child, killed after ``time_limit_s`` seconds.

    Returns the function's (picklable) result. Raises :class:`DeadlineExceededError`
    when the wall clock runs out (the child is SIGKILLed and reaped first) and
    :class:`IsolatedFailureError` when the function raised or the child died. The
    child is always reaped before this returns or raises, KeyboardInterrupt
    included, so no zombie is left behind.
    """
    if not fork_available():
        return _in_process(fn, args, kwargs)
    limit = float(time_limit_s)
    if not limit >= 0.0:  # negative or NaN: no time at all
        limit = 0.0
    deadline = time.monotonic() + limit
    read_fd, write_fd = os.pipe()
    if sys.version_info >= (3, 12):
        with warnings.catch_warnings():
            # Python >= 3.12 warns about fork() in a multi-threaded process; the child only runs
            # ``fn`` (which takes no lock another thread could hold) and leaves with os._exit.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    else:
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        os.close(read_fd)
        _child(write_fd, limit, fn, args, kwargs)
    os.close(write_fd)
    os.set_blocking(read_fd, False)
    reaped = False
    buffer = bytearray()
    try:
        poller = select.poll()
        poller.register(read_fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        watching = True
        while not _complete(buffer):
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceededError(limit)
            if poller.poll(int(min(left, _POLL_S) * 1000) + 1):
                got, eof = _drain(read_fd, buffer)
                if eof and watching:  # the child has gone: stop polling a pipe that stays readable
                    poller.unregister(read_fd)
                    watching = False
                if got:
                    continue
            done, status = _reap(pid, os.WNOHANG)
            if done:
                reaped = True
                _drain(read_fd, buffer)  # what the child wrote before exiting is still in the pipe
                if not _complete(buffer):
                    raise IsolatedFailureError(f"solver process {_describe_status(status)} without a result")
        if not reaped:
            # the message is complete, so the child is on its way out through os._exit
            _reap(pid, 0)
            reaped = True
    finally:
        if not reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _reap(pid, 0)
        os.close(read_fd)
    kind, value = pickle.loads(bytes(buffer[_HEADER.size :]))
    if kind == "ok":
        return value
    error_type, detail, _trace = value
    raise IsolatedFailureError(detail, error_type)


__all__ = ["DeadlineExceededError", "IsolatedFailureError", "fork_available", "run_with_deadline"]
