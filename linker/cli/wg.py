"""``linker-wg [-f|--foreground] INTERFACE``: linker's daemon as a drop-in for ``wireguard-go INTERFACE``.

wg-quick runs its userspace implementation as one command named by ``WG_QUICK_USERSPACE_IMPLEMENTATION`` (default
wireguard-go) when the kernel has no WireGuard, and expects what wireguard-go does:

- create the TUN device and the UAPI socket (/var/run/wireguard/INTERFACE.sock) and nothing else: no key, peers,
  addresses or routes (wg-quick sets those with `wg setconf`, `ip address`, `ip route`, `ip rule`);
- return once both exist, the daemon going on in the background (a new session), unless ``-f``/``--foreground``
  or ``WG_PROCESS_FOREGROUND=1``; the exit status says whether the device could be made;
- stop, status 0, when the interface is deleted (``wg-quick down`` runs ``ip link delete``), or on SIGTERM/SIGINT.

As wireguard-go, the background daemon keeps the caller's stdout and stderr for its log (under systemd's
``wg-quick@`` units that is the journal) and takes its verbosity from ``LOG_LEVEL`` (verbose|debug, info, error,
silent; default error, as wireguard-go).
"""

from __future__ import annotations

import logging
import os
import sys

from linker import log as logsetup
from linker.errors import ExitCode, LinkerError

USAGE = "Usage: linker-wg [-f/--foreground] INTERFACE-NAME"
LOG_LEVELS = {"verbose": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "error": logging.ERROR,
              "silent": logging.CRITICAL + 1}


def parse(argv: list[str], environ: dict[str, str]) -> tuple[str, bool] | None:
    """``(interface, foreground)`` from wireguard-go's command line; None when it is not one."""
    foreground = environ.get("WG_PROCESS_FOREGROUND") == "1"
    if len(argv) == 1 and not argv[0].startswith("-"):
        return argv[0], foreground
    if len(argv) == 2 and argv[0] in ("-f", "--foreground") and not argv[1].startswith("-"):
        return argv[1], True
    return None


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-v"]):
        from importlib.metadata import version
        print(f"linker-wg {version('linker')} (linker's WireGuard-protocol daemon; wireguard-go's command line)")
        sys.exit(0)
    parsed = parse(args, dict(os.environ))
    if parsed is None:
        print(USAGE, file=sys.stderr)
        sys.exit(int(ExitCode.USER))
    interface, foreground = parsed
    level = LOG_LEVELS.get(os.environ.get("LOG_LEVEL", "error").lower(), logging.ERROR)
    logsetup.setup(level)
    sys.exit(run_foreground(interface) if foreground else run_background(interface))


def _fail(err: LinkerError) -> str:
    return f"linker-wg: {err.message}" + (f"\n  fix: {err.fix}" if err.fix else "")


def run_foreground(interface: str, ready_fd: int | None = None) -> int:
    """Make the device, tell ``ready_fd`` (if any) how that went, then serve until the interface goes."""
    from linker.dataplane.daemon import Daemon  # pyroute2 and the protocol core are paid for only here

    try:
        daemon = Daemon(None, interface)
    except LinkerError as err:
        if ready_fd is None:
            print(_fail(err), file=sys.stderr)
        else:
            os.write(ready_fd, _fail(err).encode())
            os.close(ready_fd)
        return int(err.exit_code)
    if ready_fd is not None:
        os.write(ready_fd, b"ok")
        os.close(ready_fd)
    try:
        daemon.run()
    except LinkerError as err:
        logging.getLogger("linker.daemon").error("%s", err.message, extra={"iface": interface})
        return int(err.exit_code)
    return 0


def run_background(interface: str) -> int:
    """Fork; the child makes a new session and runs the daemon, the parent returns once the child says whether
    the device exists. Forking happens before any thread or socket exists, so the child inherits none."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the daemon
        os.close(read_end)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        code = 1
        try:
            code = run_foreground(interface, ready_fd=write_end)
        finally:
            os._exit(code)  # never return into the parent's code path (no atexit handlers twice)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 4096):
        chunks.append(chunk)
    os.close(read_end)
    answer = b"".join(chunks).decode(errors="replace")
    if answer == "ok":
        return 0
    # the child wrote why it failed, or died without a word (it is reaped here, so no zombie is left)
    _, status = os.waitpid(pid, 0)
    print(answer or f"linker-wg: the daemon exited before the device was ready (status {status})", file=sys.stderr)
    return int(ExitCode.USER) if answer else 1
