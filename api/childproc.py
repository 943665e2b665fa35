"""Child processes that end with the process that started them.

A helper process (PDF parser, llama.cpp converter) must not outlive an API or job process
that was SIGKILLed (the OOM killer, a crash): Linux's PR_SET_PDEATHSIG sends it SIGKILL when
the thread that started it dies. Pass `preexec_fn=die_with_parent()` to subprocess.
"""

import ctypes
import os
import signal
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
try:  # loaded here, not in the forked child (no dlopen between fork and exec)
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # not Linux: the children are on their own
    _libc = None


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn for subprocess: SIGKILL when the starting thread dies."""
    if _libc is None:
        return None
    libc, parent = _libc, os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return preexec
