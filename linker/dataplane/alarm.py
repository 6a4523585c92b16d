"""The loop's alarm clock: a timerfd in the epoll set, armed for the protocol core's next deadline and left armed.

Why not epoll's timeout: a finite timeout arms a kernel timer on every sleep and cancels it on every wake-up, and
in a virtual machine each of those reprograms the CPU's timer (an exit to the hypervisor). An idle tunnel's
packets come one per wake-up, so that was paid twice per packet: about a tenth of the daemon's CPU per ping
(perf, README "Performance"). The core's deadlines are seconds away (keepalive, handshake) and move on most
packets, so the alarm is armed again only when the deadline comes earlier than the time it is set for. When
the deadline moved later, it rings early, the loop finds nothing due and sets it again: about once per
keepalive interval instead of twice per packet.

Linux only, as the daemon is; Python 3.11 has no ``os.timerfd_create`` (3.13 has), so it is called through
ctypes (a stable ABI). ``Alarm.create`` returns None where the kernel refuses a timerfd, and the loop falls back
to epoll timeouts.
"""

from __future__ import annotations

import ctypes
import math
import os

CLOCK_MONOTONIC = 1  # the clock of time.monotonic() on Linux
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC
TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_libc = ctypes.CDLL(None, use_errno=True)


class Alarm:
    """One timerfd on CLOCK_MONOTONIC. ``fd`` becomes readable at the time last given to ``arm``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.armed: float | None = None  # the monotonic time it rings at, None when it has rung or was never set
        self._spec = _Itimerspec()
        self._spec_ref = ctypes.byref(self._spec)

    @classmethod
    def create(cls) -> Alarm | None:
        try:
            fd = _libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        except AttributeError:  # a libc without timerfd_create
            return None
        return None if fd < 0 else cls(fd)

    def arm(self, at: float) -> None:
        """Ring at monotonic time ``at`` (at once if it is past), replacing any earlier setting."""
        value = self._spec.it_value
        # rounded up to the nanosecond: the loop must never wake before the deadline it asked for
        ns = math.ceil(max(at, 1e-9) * 1e9)
        value.tv_sec, value.tv_nsec = divmod(ns, 1_000_000_000)
        if _libc.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, self._spec_ref, None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.armed = at

    def rang(self) -> None:
        """The fd was readable: read its count (so it is not readable again until it rings again)."""
        self.armed = None
        try:
            os.read(self.fd, 8)
        except BlockingIOError:  # read already, or re-armed since it rang
            pass

    def close(self) -> None:
        os.close(self.fd)
