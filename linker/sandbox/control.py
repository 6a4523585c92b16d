"""What ``linker up / status / down`` do with ``--sandbox``, around the controller's own code path.

``prepare_up`` builds (or finds) the sandbox and its VPCs and returns it; the command then runs the controller
against ``sandbox.target`` exactly as against AWS. ``prove`` waits for the tunnels' handshakes and proves the link
from workload host to workload host. ``down`` removes every link in the sandbox through the controller's ``down``,
then the sandbox itself, and checks that nothing of it is left.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import click

from linker.control import operations
from linker.control.changes import Change
from linker.errors import DegradedError, SandboxError, UserError
from linker.sandbox import addressing, session
from linker.sandbox.layout import current
from linker.sandbox.session import Sandbox
from linker.spec import LinkSpec, validate_regions


def prepare_up(regions: tuple[str, ...], endpoint_url: str | None, profile: str | None) -> Sandbox:
    session.require_root()
    session.refuse_targets(endpoint_url, profile)
    session.check_tools()
    session.use_sandbox_credentials()
    # the regions are checked before the sandbox makes anything in them (the controller checks them again)
    validate_regions(regions, boto3.session.Session().get_available_regions("ec2"))
    say("starting the local cloud (or finding the running one)")
    sandbox = Sandbox.start()
    indexes = sandbox.ensure_vpcs(regions)
    say("VPCs " + ", ".join(f"{r} {addressing.vpc_plan(i).cidr}" for r, i in indexes.items()) +
        f"; AWS endpoint {sandbox.endpoint}")
    sandbox.wait_materialised(regions)
    return sandbox


def say(line: str) -> None:
    """Progress on stderr (stdout holds the result, and with --json only the JSON document)."""
    click.echo(f"sandbox: {line}", err=True)


def existing(endpoint_url: str | None, profile: str | None) -> Sandbox:
    session.require_root()
    session.refuse_targets(endpoint_url, profile)
    session.use_sandbox_credentials()
    found = Sandbox.existing()
    if found is None:
        raise UserError("no sandbox is running", fix=session.START_HINT)
    return found


def prove(sandbox: Sandbox, spec: LinkSpec, timeout: float) -> dict[str, Any]:
    """Wait (bounded) for every tunnel's handshake, then ping and transfer; DegradedError if any check fails."""
    say("waiting for the gateways to boot and their tunnels to handshake")
    tunnels = sandbox.wait_handshakes(spec.name, spec.regions, timeout)
    say(f"proving the link from {spec.regions[0]}'s workload host: ping and a checksummed TCP transfer")
    results = sandbox.prove(spec.regions)
    bad = [r for r in results if not r["ping"]["received"] or not r["transfer"].get("verified")]
    if bad:
        raise DegradedError("the sandbox link does not carry traffic: " + "; ".join(describe(r) for r in bad),
                            fix="see `sudo linker sandbox hosts` and the hosts' logs under "
                                f"{sandbox.layout.hosts_dir}")
    say("waiting for the gateways' own health reports (a few seconds after a tunnel comes up)")
    return {"endpoint": sandbox.endpoint, "tunnels": tunnels, "proof": results}


def summary(proof: dict[str, Any] | None) -> list[str]:
    """What `up --sandbox` prints last: the proof, and where to go from there."""
    if not proof:
        return []
    lines = [f"sandbox: {describe(r)}" for r in proof["proof"]]
    first = proof["proof"][0] if proof["proof"] else None
    if first:
        lines.append(f"sandbox: try `sudo .venv/bin/linker sandbox exec {first['to']} -- ping "
                     f"{first['from_address']}`, `... status --sandbox`; remove it all with `... down --sandbox --yes`")
    return lines


def describe(result: dict[str, Any]) -> str:
    ping, transfer = result["ping"], result["transfer"]
    rtt = ping.get("rtt_ms")
    line = f"{result['from']} -> {result['to']} ({result['address']}): ping {ping['received']}/{ping['sent']}"
    if rtt:
        line += f", rtt avg {rtt['avg']:.2f} ms (min {rtt['min']:.2f}, max {rtt['max']:.2f})"
    if "mbit_s" in transfer:
        line += (f"; TCP {transfer['bytes'] / (1 << 20):.1f} MiB in {transfer['seconds']:.2f} s = "
                 f"{transfer['mbit_s']:.1f} Mbit/s, sha256 {'verified' if transfer['verified'] else 'MISMATCH'}")
    return line


def down(link: str, confirm: Callable[[list[Change]], bool], progress: Any, options: operations.Options,
         endpoint_url: str | None, profile: str | None) -> dict[str, Any]:
    """Every link of the sandbox through the controller's ``down``, then the sandbox; checks nothing is left."""
    session.require_root()
    session.refuse_targets(endpoint_url, profile)
    session.use_sandbox_credentials()
    layout = current()
    sandbox = Sandbox.existing(layout)
    made: list[Change] = []
    if sandbox is None:
        state = layout.read_state(any_version=True)
        names = list(state.get("namespaces", [])) if state else []
        session.remove_leftovers(layout, state)
        left = session.leftovers(layout, names)
        if left:
            raise SandboxError(f"parts of a sandbox could not be removed: {', '.join(left)}")
        return {"changes": made, "sandbox_removed": bool(state), "namespaces": names}
    regions = tuple(sandbox.regions())
    for name in dict.fromkeys([*sandbox.links(), link]):
        made += operations.down_link(sandbox.target, name, confirm, progress, regions, options)
    names = sandbox.stop()
    left = session.leftovers(layout, names)
    if left:
        raise SandboxError(f"the sandbox stopped but left {', '.join(left)}",
                           fix="run `linker down --sandbox` again; if it stays, please report it")
    return {"changes": made, "sandbox_removed": True, "namespaces": names}
