"""Child processes of the video adapter (ffmpeg readers, Janus, the fake camera) end with
the process that started them, even when it is killed without running its clean-up."""

from __future__ import annotations

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1
# Resolved here, in the parent: the child between fork and exec only makes the call.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """`preexec_fn` for a child: Linux sends it SIGTERM when its parent dies."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
