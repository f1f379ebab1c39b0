"""Preemption: remember SIGTERM/SIGUSR1, checkpoint at the next step, exit to be rerun."""

from __future__ import annotations

import signal

RESUME_EXIT_CODE = 75  # EX_TEMPFAIL: stopped by a signal, checkpoint written, run again


class Preempted(SystemExit):
    """Raised after the checkpoint is written on SIGTERM/SIGUSR1."""

    def __init__(self):
        super().__init__(RESUME_EXIT_CODE)


class SignalFlag:
    """Remembers SIGTERM/SIGUSR1 so the loop can checkpoint at the next step boundary."""

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
