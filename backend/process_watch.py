"""Watching the process that started the backend (Blender passes its own PID with --parent-pid):
once it has exited, the backend shuts down, so a backend Blender started never outlives it, even
after a crash."""

from __future__ import annotations

import os
import sys
import threading
import time

PARENT_POLL_SECONDS = 2.0


def process_alive_check(pid: int):
    """A function telling whether process ``pid`` still runs, or None when it cannot be told."""
    if os.name == "nt":
        return _windows_alive_check(pid)
    was_parent = os.getppid() == pid

    def alive() -> bool:
        # Our own parent: once it exits we are re-parented, even while it is an unreaped zombie.
        if was_parent and os.getppid() != pid:
            return False
        try:
            os.kill(pid, 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # exists, owned by someone else
        return True

    return alive


def _windows_alive_check(pid: int):
    """Best effort on Windows (os.kill(pid, 0) would *terminate* the process there): hold a
    handle to it from the start (so a reused PID cannot fool us) and ask whether it ended."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    kernel32.WaitForSingleObject.restype = wintypes.DWORD
    kernel32.WaitForSingleObject.argtypes = (wintypes.HANDLE, wintypes.DWORD)
    synchronize, wait_timeout, invalid_parameter = 0x00100000, 0x102, 87
    handle = kernel32.OpenProcess(synchronize, False, pid)
    if not handle:
        if ctypes.get_last_error() == invalid_parameter:  # no such process
            return lambda: False
        return None  # cannot watch it (access denied...)
    return lambda: kernel32.WaitForSingleObject(handle, 0) == wait_timeout


def watch_parent(pid: int, alive, on_exit, interval: float = PARENT_POLL_SECONDS) -> threading.Thread:
    """A daemon thread calling ``on_exit()`` once ``alive()`` is False (checked every ``interval`` s)."""

    def run():
        while alive():
            time.sleep(interval)
        print(f"posebridge-backend: parent process {pid} has exited: shutting down", file=sys.stderr, flush=True)
        on_exit()

    thread = threading.Thread(target=run, name="posebridge-parent-watch", daemon=True)
    thread.start()
    return thread
