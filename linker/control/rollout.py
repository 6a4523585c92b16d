"""Gateway rollout: which instance serves a site, when it is replaced, and in which order. Pure.

**The pin.** An instance's ``linker:config`` tag hashes only what the spec decides of its launch (instance type,
link, site, region, port, MTU, interface, the bucket it installs from, the agent's path, the partition), never the
controller's build: a controller of another version (a new release on an operator's laptop, two operators on two
versions) keeps the gateways it finds. Each instance records the linker it runs (``linker:version``) and the
wheelhouse it was installed from (``linker:package``, the content-addressed bucket key); where that is not this
controller's, ``plan`` and ``up`` say so (a ``note`` change that does nothing) and ``up --upgrade`` replaces them.
The wheelhouse a kept gateway was installed from stays in the bucket while it runs.

**Make before break.** A gateway is replaced (an upgrade, another instance type, a gateway that never became
ready) without taking the site down. Phases (``linker.control.changes.Phase``), each across all regions:

1. GATEWAY: the new instance is launched beside the old one, with a public address of its own (egress for its
   bootstrap: the wheelhouse from S3, the AWS APIs), and awaited until it is *ready*: its agent published the
   instance's own public key at ``naming.gateway_key_parameter`` (it does so once bootstrap finished, the daemon
   runs and the agent reads the link). Its key is not yet the one peers use: the membership still names the old
   instance, whose key peers keep. The old gateway carries all traffic meanwhile.
2. SWITCH: the Elastic IP and the VPC routes move to the new instance.
3. MEMBERSHIP: the membership, in every region, names the new instance as the site's gateway (``SiteEntry.gateway``).
4. CLEANUP: the old instance is terminated, its key record deleted.

The outage is the time from the EIP move until peers use the new key: each peer's agent reads the membership on
its next poll (``AgentSettings.poll_interval``, 10 s) and the key the membership names, reconfigures its daemon,
and the next handshake (the new gateway initiates as soon as it has traffic or a keepalive; a lost initiation is
retried after REKEY_TIMEOUT, 5 s) restores the tunnel: bounded by one agent poll plus one handshake, not by a boot.
Peers whose agent predates per-instance keys read the site's key (``naming.public_key_parameter``), which the new
agent publishes only once the membership names it, so they switch at the same time, one poll later at most.

**Two gateways (``--ha``, docs/HA.md "Rolling replacement").** A site whose gateways are both due is rolled one
gateway at a time: a pass replaces the standby (the gateway the site's routes do not point at) as above, with the
membership swapping the old standby for the new one in one write, and keeps the active as it is (``Rollout.hold``)
until a planned switch (``Phase.HANDOVER``) made the new standby the active. ``up`` then plans again (its next
pass, in the same run): the old active is now the standby, and is replaced the same way. The outage is the switch.

**Never ready.** An instance launched more than ``UNREADY_AFTER`` ago that has never published its own key is not
kept: ``up`` replaces it (make before break when it holds the EIP) instead of keeping a running-but-broken gateway.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from linker import __version__, naming
from linker.control.changes import Action, Kind
from linker.control.facts.model import Instance, RegionFacts
from linker.control.package import Package
from linker.control.render import GatewayInputs
from linker.spec import LinkSpec

UNREADY_AFTER = 600.0  # seconds after launch by which a gateway must have reported ready, or be replaced
LIVE = ("pending", "running")


@dataclass(frozen=True)
class Rollout:
    """How ``up`` treats the gateways it finds: ``upgrade`` replaces those on another linker build; ``now`` (epoch
    seconds, when the facts were read; None: no instance counts as overdue) and ``unready_after`` decide which
    never-ready instance is replaced."""

    upgrade: bool = False
    now: float | None = None
    unready_after: float = UNREADY_AFTER
    hold: frozenset[str] = frozenset()  # instances kept as they are in this pass (an active due after a switch)


def instance_config(spec: LinkSpec, inputs: GatewayInputs) -> str:
    """Hash of what the spec decides of the instance's launch; a different hash means the instance is replaced.
    The build (version, wheelhouse key and hash) is left out: it is pinned by tags and changed by ``--upgrade``."""
    decided = (spec.instance_type, inputs.link, inputs.site, inputs.region, inputs.port, inputs.mtu,
               inputs.interface, inputs.package_bucket, inputs.agent_command, inputs.partition)
    return hashlib.sha256("\n".join(map(str, decided)).encode()).hexdigest()[:16]


def launch_tags(package: Package) -> dict[str, str]:
    """The tags that pin a new instance to the build it installs."""
    return {naming.TAG_VERSION: __version__, naming.TAG_PACKAGE: package.key}


def ready(rf: RegionFacts, link: str, site: str, instance: str) -> bool:
    """Whether ``instance`` published its own key (bootstrap done, daemon and agent running)."""
    return rf.parameter(naming.gateway_key_parameter(link, site, instance)) is not None


def launched_at(instance: Instance) -> float | None:
    """The launch time as epoch seconds; None when EC2 gave none readable."""
    try:
        return datetime.fromisoformat(instance.launch_time).timestamp()
    except ValueError:
        return None


def overdue(rf: RegionFacts, link: str, site: str, instance: Instance, rollout: Rollout) -> bool:
    """Launched more than ``rollout.unready_after`` ago and never ready. An instance of a linker before readiness
    records (no ``linker:package`` tag) never wrote one: it is not judged by it."""
    launched = launched_at(instance)
    return (rollout.now is not None and launched is not None and rollout.now - launched > rollout.unready_after
            and naming.TAG_PACKAGE in dict(instance.tags) and not ready(rf, link, site, instance.id))


def kept_instance(rf: RegionFacts, link: str, site: str, config: str, vpc_id: str, instance_type: str,
                  package: Package, rollout: Rollout) -> Instance | None:
    """The instance of ``site`` to keep: live, in the site's VPC, launched for this spec, on this build when
    upgrading, not overdue; a ready one before one still booting, then the newest; one ``rollout`` holds before
    all. None: launch one."""
    in_vpc = {s.id for s in rf.subnets if s.vpc_id == vpc_id}

    def fits(i: Instance) -> bool:
        tags = dict(i.tags)
        if tags.get(naming.TAG_SITE) != site or i.state not in LIVE or i.subnet_id not in in_vpc:
            return False
        if i.id in rollout.hold:
            return True  # the active of a site with two: replaced once its sibling took over (the next pass)
        # an instance of a linker before the pin has a config hash that covered its build: its type is compared
        same = i.config == config if naming.TAG_PACKAGE in tags else i.instance_type == instance_type
        if not same or (rollout.upgrade and tags.get(naming.TAG_PACKAGE) != package.key):
            return False
        return not overdue(rf, link, site, i, rollout)

    fitting = [i for i in rf.instances if fits(i)]
    held = [i for i in fitting if i.id in rollout.hold]  # before any successor: the site's routes point at it
    if held:
        return held[0]
    return max(fitting, key=lambda i: (ready(rf, link, site, i.id), i.launch_time, i.id)) if fitting else None


def keep_fixes(site: str, instance: Instance, package: Package,
               rollout: Rollout | None = None) -> list[tuple[Action, Kind, str]]:
    """What a kept gateway instance of ``site`` needs (action, kind, why): source/dest check off, IMDSv2 only, and
    a note when it runs another build than ``package`` (none for an instance ``rollout`` holds: it is replaced in
    this run, and the plan's handover says so). The plan adds each as a GATEWAY-phase change."""
    fixes: list[tuple[Action, Kind, str]] = []
    if instance.source_dest_check:
        fixes.append((Action.UPDATE, Kind.SOURCE_DEST_CHECK, "the gateway forwards the peers' traffic"))
    if instance.http_tokens != "required":
        fixes.append((Action.UPDATE, Kind.METADATA_OPTIONS, "IMDSv2 only"))
    note = None if rollout is not None and instance.id in rollout.hold else version_note(site, instance, package)
    if note:
        fixes.append((Action.NOTE, Kind.GATEWAY_VERSION, note))
    return fixes


def version_note(site: str, instance: Instance, package: Package) -> str | None:
    """What to tell the operator when ``instance`` runs another build than ``package``; None when the same."""
    tags = dict(instance.tags)
    theirs = tags.get(naming.TAG_PACKAGE)
    if theirs == package.key:
        return None
    if theirs is None:
        running, mine = "an earlier linker (recorded by none of its tags)", __version__
    else:
        version = tags.get(naming.TAG_VERSION, "of an unknown version")
        same = version == __version__  # the same version string, another build: say which builds
        running = f"linker {version}" + (f" (build {_build(theirs)})" if same else "")
        mine = f"{__version__} (build {_build(package.key)})" if same else __version__
    return (f"gateways of {site} run {running}, this controller is {mine}; `linker up --upgrade` replaces them "
            "without an outage, each only once its successor is ready")


def _build(key: str) -> str:
    """The content hash part of a wheelhouse key (``wheels/<sha16>/<file>``)."""
    parts = key.split("/")
    return parts[1] if len(parts) > 2 else key


def wheels_to_delete(keys: Iterable[str], in_use: set[str | None]) -> list[str]:
    """The wheelhouses in the bucket that no live gateway was installed from; none when a kept gateway's own is
    unknown (a gateway of a linker before the pin: its wheelhouse is one of them)."""
    if None in in_use:
        return []
    return [k for k in keys if k.startswith("wheels/") and k not in in_use]


def gateway_records(rf: RegionFacts, link: str, site: str, keep: set[str]) -> list[str]:
    """Names of the per-instance records of ``site`` whose instance is not in ``keep`` (replaced, gone)."""
    prefix = naming.gateways_prefix(link, site)
    return [n for n, _ in rf.parameters if n.startswith(prefix) and n[len(prefix):].split("/")[0] not in keep]
