"""Where ``linker up / status / down`` run: AWS (or an endpoint such as moto), or the local sandbox.

``--sandbox`` is resolved here, in the CLI layer, into what the controller needs: a ``Target`` whose session holds
only the sandbox's access key, the sandbox's regions, and a proof step after ``up``. The controller itself knows
nothing of the sandbox and runs exactly as against AWS. The sandbox's modules (moto, PyYAML, namespaces) are
imported only when ``--sandbox`` is given: an install without the ``sandbox`` extra runs every other command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from linker.control import operations
from linker.control.aws import Target
from linker.control.changes import Change
from linker.errors import DegradedError, SandboxError, UserError
from linker.spec import LinkSpec, validate_regions

if TYPE_CHECKING:
    from linker.sandbox.lifecycle import Sandbox


@dataclass(frozen=True)
class Where:
    """What a command runs against: ``target`` for the controller, and the sandbox when ``--sandbox`` was given."""

    target: Target
    sandbox: Sandbox | None = None

    @property
    def poll(self) -> float:
        """Seconds between health polls: a sandbox gateway reports within seconds, AWS's take minutes to boot."""
        return 2.0 if self.sandbox else 10.0

    def regions(self, given: tuple[str, ...]) -> tuple[str, ...]:
        """The regions to look in: those given, else the sandbox's (else every enabled region: the empty tuple)."""
        if given or self.sandbox is None:
            return given
        return tuple(self.sandbox.regions())

    def prove(self, spec: LinkSpec, timeout: float) -> dict[str, Any] | None:
        """In the sandbox: wait for the tunnels and prove the link from workload host to workload host."""
        return _prove(self.sandbox, spec, timeout) if self.sandbox else None


def aws(endpoint_url: str | None, profile: str | None) -> Where:
    return Where(Target(profile, endpoint_url))


def for_up(sandbox: bool, regions: tuple[str, ...], endpoint_url: str | None, profile: str | None) -> Where:
    """AWS as given, or the sandbox (started, or found running) with a VPC in each of ``regions``."""
    if not sandbox:
        return aws(endpoint_url, profile)
    from linker.sandbox import addressing, preflight, seed
    from linker.sandbox.lifecycle import Sandbox, isolated_session

    _preflight(endpoint_url, profile)
    preflight.check_tools()
    # the regions are checked before the sandbox makes anything in them (the controller checks them again)
    validate_regions(regions, isolated_session("-").get_available_regions("ec2"))
    say("starting the local cloud (or finding the running one)")
    found = Sandbox.start()
    indexes = seed.ensure_vpcs(found, regions)
    say("VPCs " + ", ".join(f"{r} {addressing.vpc_plan(i).cidr}" for r, i in indexes.items()) +
        f"; AWS endpoint {found.endpoint}")
    seed.wait_materialised(found, regions)
    return Where(found.target, found)


def for_status(sandbox: bool, endpoint_url: str | None, profile: str | None) -> Where:
    """AWS as given, or the running sandbox (UserError when none is)."""
    if not sandbox:
        return aws(endpoint_url, profile)
    from linker.sandbox import preflight
    from linker.sandbox.lifecycle import Sandbox

    _preflight(endpoint_url, profile)
    found = Sandbox.existing()
    if found is None:
        raise UserError("no sandbox is running", fix=preflight.START_HINT)
    return Where(found.target, found)


def _preflight(endpoint_url: str | None, profile: str | None) -> None:
    from linker.sandbox import preflight

    preflight.require_root()
    preflight.refuse_targets(endpoint_url, profile)


def say(line: str) -> None:
    """Progress on stderr (stdout holds the result, and with --json only the JSON document)."""
    click.echo(f"sandbox: {line}", err=True)


def _prove(sandbox: Sandbox, spec: LinkSpec, timeout: float) -> dict[str, Any]:
    """Wait (bounded) for every tunnel's handshake, then ping and transfer; DegradedError if any check fails."""
    from linker.sandbox import inspection, proof

    say("waiting for the gateways to boot and their tunnels to handshake")
    tunnels = inspection.wait_handshakes(sandbox, spec.name, spec.regions, timeout)
    say(f"proving the link from {spec.regions[0]}'s workload host: ping and a checksummed TCP transfer")
    results = proof.prove(sandbox, spec.regions)
    bad = [r for r in results if not r["ping"]["received"] or not r["transfer"].get("verified")]
    if bad:
        raise DegradedError("the sandbox link does not carry traffic: " + "; ".join(describe(r) for r in bad),
                            fix="see `linker sandbox hosts` (as root) and the hosts' logs under "
                                f"{sandbox.layout.hosts_dir}")
    say("waiting for the gateways' own health reports (a few seconds after a tunnel comes up)")
    return {"endpoint": sandbox.endpoint, "tunnels": tunnels, "proof": results}


def summary(result: dict[str, Any] | None) -> list[str]:
    """What `up --sandbox` prints last: the proof, and where to go from there."""
    if not result:
        return []
    lines = [f"sandbox: {describe(r)}" for r in result["proof"]]
    first = result["proof"][0] if result["proof"] else None
    if first:
        lines.append(f"sandbox: try `.venv/bin/linker sandbox exec {first['to']} -- ping "
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


def down_sandbox(link: str, confirm: Callable[[list[Change]], bool], progress: Any, options: operations.Options,
                 endpoint_url: str | None, profile: str | None) -> dict[str, Any]:
    """Every link of the sandbox through the controller's ``down``, then the sandbox; checks nothing is left."""
    from linker.sandbox.layout import current
    from linker.sandbox.lifecycle import Sandbox, leftovers, remove_leftovers

    _preflight(endpoint_url, profile)
    layout = current()
    found = Sandbox.existing(layout)
    made: list[Change] = []
    if found is None:
        state = layout.read_state(any_version=True)
        names = list(state.get("namespaces", [])) if state else []
        remove_leftovers(layout, state)
        left = leftovers(layout, names)
        if left:
            raise SandboxError(f"parts of a sandbox could not be removed: {', '.join(left)}")
        return {"changes": made, "sandbox_removed": bool(state), "namespaces": names}
    regions = tuple(found.regions())
    for name in dict.fromkeys([*found.links(), link]):
        made += operations.down_link(found.target, name, confirm, progress, regions, options)
    names = found.stop()
    left = leftovers(layout, names)
    if left:
        raise SandboxError(f"the sandbox stopped but left {', '.join(left)}",
                           fix="run `linker down --sandbox` again; if it stays, please report it")
    return {"changes": made, "sandbox_removed": True, "namespaces": names}
