"""The link as the sandbox's gateway hosts see it: their daemons' peers and handshakes, read over the UAPI."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from linker.errors import DegradedError
from linker.gateway import wgctl
from linker.sandbox.lifecycle import Sandbox

HANDSHAKE_AGE = 180.0  # REJECT_AFTER_TIME: an older handshake means no session


def tunnels(sandbox: Sandbox, link: str, regions: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """Each region's gateways' view of their tunnels, from their daemons (UAPI): peers, handshaken peers, and how
    many peers each should have (one per gateway of every other region: two for a ``--ha`` site)."""
    now = time.time()
    current = {region: gateway_instances(sandbox, link, region) for region in regions}  # not ones being removed
    out: dict[str, list[dict[str, Any]]] = {}
    for region in regions:
        want = sum(len(current[r]) for r in regions if r != region)
        for host in sorted((h for h in sandbox.hosts(region, link=link) if h["instance"] in current[region]),
                           key=lambda h: h["instance"]):
            entry: dict[str, Any] = {"instance": host["instance"], "peers": 0, "handshaken": 0, "want": want,
                                     "boot": host.get("boot")}
            state = uapi_state(Path(host["dir"], "run", "wireguard"))
            if state is not None:
                entry["peers"] = len(state.peers)
                entry["handshaken"] = sum(1 for p in state.peers.values()
                                          if p.last_handshake and now - p.last_handshake < HANDSHAKE_AGE)
            out.setdefault(region, []).append(entry)
    return out


def gateway_instances(sandbox: Sandbox, link: str, region: str) -> set[str]:
    """The link's running gateway instances in ``region``, as EC2 says."""
    reply = sandbox.client("ec2", region).describe_instances(Filters=[
        {"Name": "tag:linker:link", "Values": [link]}, {"Name": "tag:linker:site", "Values": [region]},
        {"Name": "instance-state-name", "Values": ["running"]}])
    return {i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]}


def _up(entry: dict[str, Any]) -> bool:
    return bool(entry["want"]) and entry["peers"] == entry["want"] and entry["handshaken"] == entry["want"]


def wait_handshakes(sandbox: Sandbox, link: str, regions: tuple[str, ...],
                    timeout: float) -> dict[str, list[dict[str, Any]]]:
    """Until every gateway has a peer for each gateway of the other regions, each with a recent handshake."""
    deadline = time.monotonic() + timeout
    while True:
        seen = tunnels(sandbox, link, regions)
        if all(seen.get(r) and all(_up(e) for e in seen[r]) for r in regions):
            return seen
        if time.monotonic() > deadline:
            late = [f"{r} (no gateway host)" for r in regions if not seen.get(r)] + [
                f"{r} {e['instance']} ({e['handshaken']}/{e['want']} peers up, boot {e['boot']})"
                for r in regions for e in seen.get(r, []) if not _up(e)]
            raise DegradedError(f"link {link!r} in the sandbox: no handshake after {timeout:.0f} s from "
                                f"{', '.join(late)}",
                                fix=f"see `linker sandbox hosts` (as root) and the hosts' logs in "
                                    f"{sandbox.layout.hosts_dir}/<instance>/log/")
        time.sleep(0.5)


def uapi_state(directory: Path) -> wgctl.DeviceState | None:
    """The state of the daemon whose UAPI socket is in ``directory`` (a host's /run/wireguard), None if none answers.

    The socket is reached through /proc/self/fd: its full path in a sandbox directory can exceed the 107 bytes a
    unix socket address holds."""
    try:
        fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        sockets = sorted(p.name for p in directory.glob("*.sock"))
        return wgctl.get(Path(f"/proc/self/fd/{fd}", sockets[0])) if sockets else None
    except wgctl.UapiError:
        return None
    finally:
        os.close(fd)
