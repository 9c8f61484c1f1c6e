"""Worker processes that run one function of the add-on on plain data (numpy arrays, builtins).

Python threads share one interpreter lock, and drawing a pose map is hundreds of small numpy
calls that hold it: on two cores two threads drew fewer maps a second than one
(bench/bench_pose_maps.py). Processes do not share it. ``WorkerProcesses(target, count)``
starts ``count`` children at once (they start up while the job samples its first frames);
``submit(task)`` queues the task for the least busy child and returns a Future; per child, a
writer thread feeds its pipe and a reader thread completes the Futures as replies come. Tasks
queue there, so a child never waits for the submitting thread (which may be busy drawing a
frame itself) and the submitting thread never waits for a child.

The children are the Python that runs Blender (``sys.executable``: Blender's own Python, or the
one that imported bpy), started as a script (child_main.py) that imports the add-on's package
by folder name: multiprocessing could not, as inside Blender the package is ``bl_ext.…``, which
only Blender can import. Tasks and replies go over the child's stdin and stdout as
length-prefixed pickles of plain data; a child's prints go to stderr. An OSError in a child
(disk full, folder gone) comes back as the same OSError, any other error as WorkerError; a
child that dies fails its outstanding tasks with WorkerError. Closing the pipes ends the
children.
"""
from __future__ import annotations

import importlib
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future
from pathlib import Path

_CHILD_MAIN = Path(__file__).with_name("child_main.py")
_PACKAGE = __name__.rsplit(".", 2)[0]  # "posebridge", or "bl_ext.<repository>.posebridge" in Blender
_LENGTH = struct.Struct(">Q")


class WorkerError(RuntimeError):
    """A worker process failed other than with an OSError, or ended."""


class WorkerProcesses:
    """``count`` child processes running ``target`` ("module:function" inside the package)."""

    def __init__(self, target: str, count: int):
        """Start the children; WorkerError (and none left running) when one cannot start."""
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        self.target = target
        self._children: list[_Child] = []
        try:
            for _ in range(count):
                self._children.append(_Child(target))
        except OSError as error:  # no Python at sys.executable, no permission, no processes left
            self.close()
            raise WorkerError(f"cannot start a worker process ({sys.executable}): {error}") from None

    def submit(self, task) -> Future:
        """Run ``function(task)`` in the child with the fewest tasks out; its Future."""
        return min(self._children, key=lambda child: (child.ended is not None, len(child.outstanding))).submit(task)

    def close(self) -> None:
        """End the children (their pipes close; they exit). Tasks still out fail."""
        for child in self._children:
            child.close()

    def __enter__(self) -> "WorkerProcesses":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Child:
    def __init__(self, target: str):
        package_dir = Path(sys.modules[_PACKAGE].__path__[0])  # not resolved: a symlinked package keeps its name
        # -I: the child ignores PYTHONPATH, PYTHONHOME and the user's site-packages, as Blender's
        # own Python does unless told otherwise, so it imports the numpy Blender runs.
        self.process = subprocess.Popen(
            [sys.executable, "-I", str(_CHILD_MAIN), str(package_dir.parent), package_dir.name, target],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),  # no console window on Windows
        )
        self.outstanding: deque[Future] = deque()  # in the order the child answers
        self.ended: str | None = None  # why the child is gone, once it is
        self._lock = threading.Lock()  # outstanding and ended change together
        # A pipe holds 64 KB, a few frames' triangles: writing from the submitting thread would
        # block it until the child reads. The writer thread blocks instead.
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        for job, name in ((self._write_tasks, "posebridge-worker-writer"), (self._read_replies, "posebridge-worker-reader")):
            threading.Thread(target=job, name=name, daemon=True).start()

    def submit(self, task) -> Future:
        future: Future = Future()
        future.set_running_or_notify_cancel()
        with self._lock:
            if self.ended is not None:  # nobody would ever answer it
                future.set_exception(WorkerError(self.ended))
                return future
            self.outstanding.append(future)  # before sending: the reply cannot come first
        self._tasks.put(task)
        return future

    def _write_tasks(self) -> None:
        try:
            while (task := self._tasks.get()) is not None:
                _send(self.process.stdin, task)
        except Exception:  # the child is gone (a broken pipe), or a task would not pickle
            self.process.kill()  # the reader then fails every task out
        finally:
            try:
                self.process.stdin.close()  # the child's read ends: it exits, and the reader with it
            except OSError:
                pass

    def _read_replies(self) -> None:
        """Complete the Futures as replies come; whatever ends this (the child exiting, a reply
        that makes no sense), every task still out fails and later ones fail at once."""
        why = None
        try:
            while (reply := _receive(self.process.stdout)) is not None:
                with self._lock:
                    future = self.outstanding.popleft()
                kind, *rest = reply
                if kind == "ok":
                    future.set_result(rest[0])
                elif kind == "oserror":
                    number, reason, filename = rest
                    future.set_exception(OSError(number, reason, filename) if filename else OSError(number, reason))
                else:
                    future.set_exception(WorkerError(rest[0]))
        except Exception as error:  # a garbled or unexpected reply: this child cannot be trusted
            why = f"a worker process answered nonsense ({type(error).__name__}: {error})"
            self.process.kill()
        code = self.process.wait()  # its stdout ended: it is exiting (this also reaps it)
        self.process.stdout.close()
        with self._lock:
            self.ended = why or f"a worker process ended unexpectedly (exit code {code})"
            unanswered = list(self.outstanding)
            self.outstanding.clear()
        for future in unanswered:
            future.set_exception(WorkerError(self.ended))

    def close(self) -> None:
        self._tasks.put(None)  # after the tasks already queued


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _receive(stream):
    """The next object, or None when the other side closed the pipe."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def serve(package: str, target: str) -> int:
    """The child's loop: read a task, run the function, write the reply; until stdin closes."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything else written to stdout (a stray print, a C library) goes to stderr
    sys.stdout = sys.stderr
    # Ctrl-C in the terminal Blender runs in reaches the children too: the parent decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tasks = sys.stdin.buffer
    module_name, function_name = target.split(":")
    function = getattr(importlib.import_module(f"{package}.{module_name}"), function_name)
    while True:
        task = _receive(tasks)
        if task is None:
            return 0
        try:
            reply = ("ok", function(task))
        except OSError as error:
            reply = ("oserror", error.errno, error.strerror or str(error), error.filename)
        except Exception as error:  # reported to the parent, which raises it as WorkerError
            reply = ("error", f"{type(error).__name__}: {error}")
        _send(replies, reply)
