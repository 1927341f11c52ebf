"""ModelOpt's child process: its SIGCHLD never reaches the waiting main thread (a process-wide
SIGCHLD handler with SA_ONSTACK, such as PyTorch's DataLoader installs, plus an unusable
alternate signal stack killed the test suite with SIGSEGV there), and the signal mask is restored."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from yolov3_trt.quantize.int8_tensorrt import _child_signal_blocked


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks only")
def test_the_childs_sigchld_is_consumed_and_the_mask_restored():
    calls = []
    previous = signal.signal(signal.SIGCHLD, lambda *a: calls.append(a))
    try:
        before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
        with _child_signal_blocked():  # (another thread may still take the process-wide signal)
            assert signal.SIGCHLD in signal.pthread_sigmask(signal.SIG_BLOCK, set())
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before
        # nothing left pending for this thread: unblocking delivered nothing on its (alternate) stack
        assert signal.SIGCHLD not in signal.sigpending()
    finally:
        signal.signal(signal.SIGCHLD, previous)
