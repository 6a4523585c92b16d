"""Failures of a ``--ha`` site's gateway, made for real in the sandbox, and the gap they cut in traffic.

Used by ``bench/failover.py`` (the table of gaps per failure kind, issue 13) and by the sandbox's HA tests. Each
``fail_*`` function makes one failure of docs/HA.md's table and returns what undoes it; they touch only the
sandbox's own namespaces and the processes its hosts run, by PID. ``Pinger`` records a 10-per-second ping between
two workload hosts and reports the longest time without a reply.

Not thread-safe; one caller drives a sandbox at a time (root).
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linker import naming
from linker.errors import SandboxError
from linker.sandbox import addressing, netns
from linker.sandbox.inspection import uapi_state
from linker.sandbox.lifecycle import Sandbox
from linker.wg.constants import REJECT_AFTER_TIME

Restore = Callable[[], None]
PING_INTERVAL = 0.1
CHAOS_TABLE = "linker_chaos"  # an nftables table of its own: the supervisor replaces only its own tables
_REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)")


@dataclass(frozen=True)
class Pair:
    """A site's two gateways: which one the site's routes point at (None: no single owner) and both hosts."""

    site: str
    active: str | None
    hosts: tuple[dict[str, Any], ...]

    @property
    def standby(self) -> str | None:
        others = [h["instance"] for h in self.hosts if h["instance"] != self.active]
        return others[0] if self.active is not None and len(others) == 1 else None

    def host(self, instance: str) -> dict[str, Any]:
        return next(h for h in self.hosts if h["instance"] == instance)


def route_owner(sandbox: Sandbox, link: str, site: str) -> str | None:
    """The instance all of ``site``'s linker routes point at (AWS's answer to "who is active"), else None."""
    ec2 = sandbox.client("ec2", site)
    owners: set[str | None] = set()
    enis: dict[str, str] = {}
    for table in ec2.describe_route_tables(
            Filters=[{"Name": f"tag:{naming.route_table_tag(link)}", "Values": [site]}])["RouteTables"]:
        cidrs = naming.routes_tagged(link, ((t["Key"], t["Value"]) for t in table.get("Tags", [])))
        routes = {r.get("DestinationCidrBlock"): r for r in table.get("Routes", [])}
        for cidr in cidrs:
            route = routes.get(cidr, {})
            owner = route.get("InstanceId")
            if owner is None and route.get("NetworkInterfaceId"):
                eni = route["NetworkInterfaceId"]
                if eni not in enis:
                    found = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"]
                    enis[eni] = (found[0].get("Attachment") or {}).get("InstanceId", "") if found else ""
                owner = enis[eni] or None
            owners.add(None if route.get("State") == "blackhole" else owner)
    return owners.pop() if len(owners) == 1 else None


def pair(sandbox: Sandbox, link: str, site: str) -> Pair:
    hosts = tuple(sorted(sandbox.hosts(site, "gateway", link), key=lambda h: h["instance"]))
    return Pair(site, route_owner(sandbox, link, site), hosts)


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    """``check()``'s first truthy value within ``timeout`` seconds; raises SandboxError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SandboxError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# --- the failures (docs/HA.md, "Failure kinds"); each returns what undoes it ---

def _pids(host: dict[str, Any], marker: str) -> list[int]:
    """PIDs of the processes in ``host``'s namespace whose command line holds ``marker``."""
    out = []
    for pid in netns.pids_in(host["netns"]):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            out.append(pid)
    return out


def daemon_pid(host: dict[str, Any]) -> int:
    pids = _pids(host, "linker daemon ")
    if len(pids) != 1:
        raise SandboxError(f"{host['instance']} runs {len(pids)} daemons, not one")
    return pids[0]


def agent_pid(host: dict[str, Any]) -> int | None:
    pids = _pids(host, "linker gateway run")
    return pids[0] if len(pids) == 1 else None


def warm_pair(sandbox: Sandbox, link: str, site: str, since: float = 0.0) -> Pair | None:
    """The site's pair once both gateways run their agents, the routes have one owner and the standby holds a
    live session (handshaken after ``since``, e.g. a restarted daemon's new one, and within REJECT_AFTER_TIME), so
    that a failover to it needs no handshake; else None."""
    found = pair(sandbox, link, site)
    if len(found.hosts) != 2 or found.active is None or found.standby is None:
        return None
    if any(h.get("boot") != "done" or agent_pid(h) is None for h in found.hosts):
        return None
    state = uapi_state(Path(found.host(found.standby)["dir"], "run", "wireguard"))
    now = time.time()
    live = state is not None and any(
        p.last_handshake and since < p.last_handshake and now - p.last_handshake < REJECT_AFTER_TIME
        for p in state.peers.values())
    return found if live else None


def fail_stop(sandbox: Sandbox, host: dict[str, Any]) -> Restore:
    """Kind 1: the instance stopped through the EC2 API (its host goes away); undone by starting it again."""
    ec2 = sandbox.client("ec2", host["region"])
    ec2.stop_instances(InstanceIds=[host["instance"]])

    def restore() -> None:
        wait_for(f"{host['instance']} to stop", lambda: _state(ec2, host["instance"]) == "stopped", 60)
        ec2.start_instances(InstanceIds=[host["instance"]])
    return restore


def _state(ec2: Any, instance: str) -> str:
    reply = ec2.describe_instances(InstanceIds=[instance])["Reservations"]
    return str(reply[0]["Instances"][0]["State"]["Name"])


def fail_interface(sandbox: Sandbox, host: dict[str, Any]) -> Restore:
    """Kind 2: the instance's network interface down inside its host; undone by bringing it up with its route."""
    dev = addressing.Names.HOST_DEVICE
    netns.ip("link", "set", dev, "down", netns=host["netns"])

    def restore() -> None:
        vpc_router = _subnet_router(host["private_ip"])
        netns.ip_batch([f"link set {dev} up", f"route replace default via {vpc_router} dev {dev}"], host["netns"])
    return restore


def _subnet_router(private_ip: str) -> str:
    """The VPC router of the sandbox's /24 subnets (addressing.VpcPlan): the subnet's first address."""
    return addressing.router_ip(".".join(private_ip.split(".")[:3]) + ".0/24")


def fail_freeze(sandbox: Sandbox, host: dict[str, Any]) -> Restore:
    """Kind 3: the daemon frozen (SIGSTOP), the agent alive; undone by SIGCONT."""
    pid = daemon_pid(host)
    os.kill(pid, signal.SIGSTOP)

    def restore() -> None:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass  # the agent's supervisor replaced it meanwhile
    return restore


def fail_agent(sandbox: Sandbox, host: dict[str, Any]) -> Restore:
    """Kind 4: the agent killed (SIGKILL), the daemon fine: the host's service manager restarts the agent."""
    pid = agent_pid(host)
    if pid is None:
        raise SandboxError(f"{host['instance']} runs no agent")
    os.kill(pid, signal.SIGKILL)

    def restore() -> None:
        wait_for(f"{host['instance']}'s agent to be restarted", lambda: agent_pid(host) not in (None, pid), 60)
    return restore


def _chaos_rules(router: str, rules: list[str]) -> Restore:
    netns.nft(router, f"table inet {CHAOS_TABLE} {{\n chain forward {{\n  type filter hook forward priority -10;\n"
              + "".join(f"  {r} drop\n" for r in rules) + " }\n}\n")

    def restore() -> None:
        subprocess.run(["ip", "netns", "exec", router, "nft", "delete", "table", "inet", CHAOS_TABLE],
                       capture_output=True, check=False)
    return restore


def _router(sandbox: Sandbox, region: str) -> str:
    return next(r["netns"] for r in sandbox.refresh()["routers"].values() if r["region"] == region)


def fail_partition(sandbox: Sandbox, pair_: Pair) -> Restore:
    """Kind 5: the site's two gateways cannot reach each other (their VPC router drops what goes between them),
    while both reach everything else."""
    a, b = (h["private_ip"] for h in pair_.hosts)
    return _chaos_rules(_router(sandbox, pair_.site), [f"ip saddr {a} ip daddr {b}", f"ip saddr {b} ip daddr {a}"])


def fail_api(sandbox: Sandbox, sites: list[str], link: str) -> Restore:
    """Kind 6: the AWS API unreachable from every gateway of the link (their VPC routers drop what they send it)."""
    undo = []
    for site in sites:
        sources = ", ".join(h["private_ip"] for h in pair(sandbox, link, site).hosts)
        undo.append(_chaos_rules(_router(sandbox, site),
                                 [f"ip saddr {{ {sources} }} ip daddr {addressing.API_ADDRESS}"]))

    def restore() -> None:
        for u in undo:
            u()
    return restore


# --- what traffic sees ---

class Pinger:
    """``ping -D`` 10 times a second from one host to an address, in the background; ``stop()`` then reports."""

    def __init__(self, sandbox: Sandbox, host: dict[str, Any], address: str, log: Path) -> None:
        self.log, self.started = log, time.time()
        with log.open("w") as out:
            self.proc = subprocess.Popen([*sandbox.enter(host), "ping", "-D", "-n", "-i", str(PING_INTERVAL),
                                          "-W", "1", address], stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> Gaps:
        self.stopped = time.time()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return gaps(self.log.read_text(), self.started, self.stopped)


@dataclass(frozen=True)
class Gaps:
    """Replies of a ping run: how many, and the longest time without one (from the start, between replies, and
    to the end), in seconds."""

    sent_seconds: float
    replies: int
    longest: float
    longest_at: float  # wall-clock time the longest gap began

    def to_dict(self) -> dict[str, float]:
        return {"seconds": round(self.sent_seconds, 1), "replies": self.replies, "longest_gap": round(self.longest, 2)}


def gaps(text: str, started: float, stopped: float) -> Gaps:
    """The gaps in ``ping -D`` output ``text`` of a run from ``started`` to ``stopped`` (wall clock)."""
    times = sorted(float(m.group(1)) for m in map(_REPLY.match, text.splitlines()) if m)
    edges = [started, *times, stopped]
    longest, at = 0.0, started
    for a, b in itertools.pairwise(edges):
        if b - a > longest:
            longest, at = b - a, a
    return Gaps(stopped - started, len(times), longest, at)
