"""A sandbox host's init: gives the host its own filesystem view, then waits (``python -m linker.sandbox.hostinit``).

Started by the supervisor with ``ip netns exec <host namespace>``, which puts it in a mount namespace of its own.
There it overlays /etc, /opt, /var and /usr/local with the host's own writable layers and binds the host's own /run
and /tmp, so that two gateways never share /etc/linker, /var/lib/linker, /usr/local/sbin/linker-bootstrap,
/run/linker or /run/wireguard (every gateway's interface is linker0). The sandbox's stand-ins for distribution
tools are bound at /run/.sandbox/bin. Every other process of the host enters this process's namespaces (nsenter), so
they all see the same files. It exits on SIGTERM; the mounts go with its namespace, nothing is left in the machine's.

Usage: python -m linker.sandbox.hostinit HOST_DIR SHIMS_DIR
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

# what an instance writes to (cloud-init's write_files, packages, state); /usr/local too: the gateway's bootstrap
# script is /usr/local/sbin/linker-bootstrap, and one host's must never be another's (or land on the machine)
OVERLAID = ("etc", "opt", "var", "usr/local")
SHIMS_AT = "/run/.sandbox/bin"
READY = "ready"


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True, timeout=10)


REPLACED = ("/tmp", "/run")  # the host's own, empty: what lies there on the machine is out of sight


def controller_paths() -> list[Path]:
    """What the host's processes run from (the controller's interpreter, virtual environment and linker) that lies
    under a directory the host replaces: a checkout or CI clone in /tmp, say. Those are bound back, read-only."""
    import linker

    wanted = {p.resolve() for p in (Path(sys.prefix), Path(sys.base_prefix), Path(linker.__file__).parents[1])}
    hidden = [p for p in wanted if any(p.is_relative_to(top) for top in REPLACED) and p.is_dir()]
    # a directory inside another one kept comes with it
    return sorted(p for p in hidden if not any(p != q and p.is_relative_to(q) for q in hidden))


def set_up(host_dir: Path, shims: Path) -> None:
    """Mount the host's view. Order matters: the sandbox directory itself lies under /run, which is bound last."""
    keep = [(p, os.open(p, os.O_PATH | os.O_DIRECTORY)) for p in controller_paths()]  # before they are hidden
    mount("--make-rprivate", "/")  # nothing mounted here may reach the machine's namespace
    for top in OVERLAID:
        if not Path("/", top).is_dir():
            continue
        upper, work = host_dir / "upper" / top, host_dir / "work" / top
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        mount("-t", "overlay", "overlay", "-o", f"lowerdir=/{top},upperdir={upper},workdir={work}", f"/{top}")
    own_tmp, own_run = host_dir / "tmp", host_dir / "run"
    own_tmp.mkdir(exist_ok=True)
    own_tmp.chmod(0o1777)
    mount("--bind", str(own_tmp), "/tmp")
    own_run.mkdir(mode=0o755, exist_ok=True)
    at = own_run / SHIMS_AT.removeprefix("/run/")
    at.mkdir(parents=True, exist_ok=True)
    mount("--bind", str(shims), str(at))
    mount("-o", "remount,ro,bind", str(at))
    mount("--rbind", str(own_run), "/run")
    for path, fd in keep:
        if not path.is_dir():
            path.mkdir(parents=True)  # inside the host's own /tmp or /run
        # the descriptor, not its path: that path now names the host's own (empty) directory
        mount("--no-canonicalize", "--bind", f"/proc/{os.getpid()}/fd/{fd}", str(path))
        mount("-o", "remount,ro,bind", str(path))
        os.close(fd)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    host_dir, shims = Path(argv[0]), Path(argv[1])
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    here = os.open(host_dir, os.O_RDONLY | os.O_DIRECTORY)  # host_dir is out of sight once /run is bound
    try:
        set_up(host_dir, shims)
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        print(f"host init: cannot set up the host's filesystem: {detail}", file=sys.stderr)
        return 1
    fd = os.open(READY, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, dir_fd=here)
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    os.close(here)
    while not stop:
        signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
