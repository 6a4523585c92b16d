"""Dropping root after start-up: the daemon opens what needs it, then runs as an unprivileged user.

What needs root is opened first (the TUN device, the UDP sockets, the netlink socket, the UAPI socket); then
``drop_to`` switches to the user and keeps at most CAP_NET_ADMIN, which changing routes, the MTU or the fwmark
later needs (the kernel checks the caller's capability on each netlink request and on SO_MARK, not only the
opener's). A daemon that manages no routes keeps nothing. NO_NEW_PRIVS is set, and the capability bounding set is
cut to what is kept, so neither an exec nor a setuid binary can bring anything back.

Linux only. The standard library has no capset(2): it is called through ctypes (the ABI is stable, version 3).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pwd
import threading
from dataclasses import dataclass
from pathlib import Path

from linker.errors import UserError

CAP_NET_ADMIN = 12
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_PR_CAPBSET_DROP = 24
_PR_SET_KEEPCAPS = 8
_PR_SET_NO_NEW_PRIVS = 38


class PrivilegeDropError(UserError):
    """The daemon cannot become the user it was asked to run as: exit 2, nothing is left running."""

    kind = "privilege_error"


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


@dataclass(frozen=True)
class Identity:
    """Who the process is after a drop, as /proc/self/status reports it."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    effective: int  # capability bitmasks
    permitted: int
    bounding: int


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise PrivilegeDropError(f"{what} failed: {os.strerror(code)}",
                                 "run the daemon as root (it drops to --user itself), or without --user")


def _last_cap() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 40


def resolve(user: str) -> tuple[int, int]:
    """``user`` (a name or a numeric uid) -> (uid, its primary gid); PrivilegeDropError when it does not exist."""
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, OverflowError):
        raise PrivilegeDropError(f"there is no user {user!r} to run the daemon as",
                                 "create one (useradd --system --no-create-home --shell /usr/sbin/nologin "
                                 f"{user}) or name another with --user") from None
    return entry.pw_uid, entry.pw_gid


def drop_to(user: str, keep_net_admin: bool) -> Identity:
    """Become ``user`` (no supplementary groups) keeping CAP_NET_ADMIN only if ``keep_net_admin``.

    Raises PrivilegeDropError when not root or when a step fails; the process is then unchanged or must exit
    (the caller closes everything and exits: a half-dropped daemon never runs)."""
    uid, gid = resolve(user)
    if uid == 0:
        raise PrivilegeDropError("--user names root: that is no drop", "name an unprivileged user")
    if threading.active_count() != 1:  # capset(2) changes the calling thread only
        raise PrivilegeDropError("the daemon started a thread before dropping privileges", "report this as a bug")
    if os.geteuid() != 0:
        raise PrivilegeDropError("--user needs the daemon to start as root", "start it as root, or without --user")
    libc = _libc()
    keep = 1 << CAP_NET_ADMIN if keep_net_admin else 0
    for cap in range(_last_cap() + 1):  # the bounding set, while CAP_SETPCAP is still ours
        if not keep & (1 << cap):
            _check(libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0), f"dropping capability {cap} from the bounding set")
    _check(libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0), "PR_SET_KEEPCAPS")
    try:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)  # permitted capabilities survive (KEEPCAPS); the effective set is now empty
    except OSError as exc:
        raise PrivilegeDropError(f"cannot switch to user {user!r}: {exc.strerror}",
                                 "start the daemon as root") from None
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)(_Data(keep, keep, 0), _Data(0, 0, 0))
    _check(libc.capset(ctypes.byref(header), data), "capset")
    _check(libc.prctl(_PR_SET_KEEPCAPS, 0, 0, 0, 0), "clearing PR_SET_KEEPCAPS")
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    now = current()
    if now.uid != uid or now.permitted & ~keep or now.effective != keep:
        raise PrivilegeDropError(f"the drop to {user!r} did not hold ({now})", "report this as a bug")
    return now


def current(pid: int | str = "self") -> Identity:
    """The identity of process ``pid`` from /proc (a test reads the daemon's this way)."""
    fields: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return Identity(uid=int(fields["Uid"].split()[1]), gid=int(fields["Gid"].split()[1]),
                    groups=tuple(int(g) for g in fields.get("Groups", "").split()),
                    effective=int(fields["CapEff"], 16), permitted=int(fields["CapPrm"], 16),
                    bounding=int(fields["CapBnd"], 16))
