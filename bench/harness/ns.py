"""Two network namespaces joined by one veth pair: the benchmark's whole world.

Built with ``linker.sandbox.netns`` (the one namespace toolkit); this module only names the pair and probes it.
The underlay uses TEST-NET-1 (RFC 5737) and the namespaces get no other link and no default route, so nothing
the benchmark sends can leave them.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from linker.sandbox import netns

UNDERLAY_A = "192.0.2.1"
UNDERLAY_B = "192.0.2.2"
UNDERLAY_PREFIX = 24


def run(argv: list[str], *, ns: str | None = None, timeout: float = 30, check: bool = True,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a short command (inside ``ns`` if given) and return its output; SandboxError when it fails (``check``)
    or outlives ``timeout``."""
    return netns.run(argv, input=input, check=check, timeout=timeout, netns=ns)


@dataclass(frozen=True)
class Underlay:
    """Namespace ``ns_a`` (192.0.2.1) and ``ns_b`` (192.0.2.2), joined by veth ``veth_a`` <-> ``veth_b``."""

    ns_a: str
    ns_b: str
    veth_a: str
    veth_b: str
    addr_a: str = UNDERLAY_A
    addr_b: str = UNDERLAY_B

    @classmethod
    def named(cls, tag: str) -> Underlay:
        """The names for run ``tag``: ``lkb-<tag>-a`` and so on (interface names must fit in 15 characters)."""
        names = [f"lkb-{tag}-{s}" for s in ("a", "b", "va", "vb")]
        if max(map(len, names)) > netns.IFNAMSIZ:
            raise ValueError(f"tag {tag!r} makes interface names longer than {netns.IFNAMSIZ} characters")
        return cls(*names)

    def create(self) -> None:
        """Build both namespaces and the veth between them. On failure, whatever was made is removed."""
        try:
            for ns in (self.ns_a, self.ns_b):
                netns.add(ns)
            netns.veth(self.ns_a, self.veth_a, self.ns_b, self.veth_b)
            for ns, dev, addr in ((self.ns_a, self.veth_a, self.addr_a), (self.ns_b, self.veth_b, self.addr_b)):
                netns.addr_add(ns, dev, f"{addr}/{UNDERLAY_PREFIX}")
        except BaseException:
            self.delete()
            raise

    def delete(self) -> None:
        """Remove both namespaces (the veth goes with them). Never raises; a namespace already gone is fine."""
        for ns in (self.ns_a, self.ns_b):
            netns.delete(ns)

    def exists(self) -> list[str]:
        """The namespaces of this pair that exist right now."""
        return [ns for ns in (self.ns_a, self.ns_b) if netns.exists(ns)]


def reachable(ns: str, addr: str, wait: float = 1.0) -> bool:
    """Whether one ping from ``ns`` to ``addr`` is answered within ``wait`` seconds."""
    res = run(["ping", "-n", "-q", "-c", "1", "-W", str(wait), addr], ns=ns, check=False, timeout=wait + 5)
    return res.returncode == 0


def route_dev(ns: str, addr: str) -> str | None:
    """The device the kernel in ``ns`` would send a packet for ``addr`` through."""
    words = run(["ip", "-o", "route", "get", addr], ns=ns).stdout.split()
    return words[words.index("dev") + 1] if "dev" in words else None


def listening(ns: str, port: int) -> bool:
    """Whether something in ``ns`` listens on TCP ``port``."""
    return bool(run(["ss", "-Hltn", f"sport = :{port}"], ns=ns).stdout.strip())
