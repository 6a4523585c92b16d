"""The controller's operations, as the CLI and the sandbox call them: plan, up, down, status.

Each is facts -> pure plan -> apply. ``plan_link`` builds read-only clients only. ``up_link`` and ``down_link``
hold the link's lock in AWS (in its home region, see home.py and lock.py) from before the facts are read until the
last change is made.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from linker import naming
from linker.contract import BootstrapReport, GatewayHealth
from linker.control import package
from linker.control.apply import Applier, Progress
from linker.control.aws import Clients, Target, cloud_call, error_code, is_not_found
from linker.control.changes import Action, Change, Kind
from linker.control.facts import readers as facts_mod
from linker.control.ha_status import ago as _ago
from linker.control.ha_status import site_gateways
from linker.control.home import forget_home
from linker.control.lock import lock_link
from linker.control.plan import managed_by_terraform_error, plan, refuse_managed_elsewhere
from linker.control.rollout import UNREADY_AFTER, Rollout
from linker.control.teardown import teardown
from linker.errors import CloudError, ContractError, ContractVersionError, DegradedError
from linker.spec import LinkSpec, gateway_architecture, validate_regions

log = logging.getLogger("linker.control")
Confirm = Callable[[list[Change]], bool]
# what a region answers an identity that may not use it: an SCP's deny, a region not opted in
REGION_REFUSED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                            "UnrecognizedClientException", "InvalidClientTokenId", "AuthFailure"})
DISCOVERY_REGION = "us-east-1"  # where DescribeRegions is asked when no region is given (always enabled)
ROLLING_PASSES = 3  # of up: the standbys, then (after the switches) the old actives, and one to spare


@dataclass(frozen=True)
class Options:
    """How a mutating run behaves: lock handling, parallelism and polling (tests shorten the waits)."""

    force_unlock: bool = False
    max_workers: int = 8
    poll: float = 2.0
    timeout: float = 600.0
    hooks: tuple = field(default=())
    session: Any = None  # a boto3 session to reuse (tests); None: a new one from the standard credential chain
    clients: Clients | None = None  # read-write clients to reuse across runs (tests, a long-lived sandbox)
    upgrade: bool = False  # replace gateways that run another linker build (make before break)
    unready_after: float = UNREADY_AFTER  # a gateway never ready this long after launch is replaced


def _rollout(options: Options) -> Rollout:
    """How ``up`` treats the gateways it finds, as of now (linker.control.rollout)."""
    return Rollout(options.upgrade, time.time(), options.unready_after)


def _noted(changes: list[Change]) -> list[Change]:
    """``changes`` without the notes, which are logged (a warning: the CLI shows it) and change nothing."""
    for c in changes:
        if c.action == Action.NOTE:
            log.warning("%s", c.reason, extra={"region": c.region, "resource": c.target})
    return [c for c in changes if c.action != Action.NOTE]


def plan_link(target: Target, spec: LinkSpec, hooks: tuple = (), session: Any = None,
              upgrade: bool = False) -> list[Change]:
    """The changes ``up`` (``--upgrade`` when ``upgrade``) would make, notes included, from read-only clients."""
    clients = Clients(target, read_only=True, hooks=hooks, session=session)
    validate_regions(spec.regions, clients.known_regions())
    facts = facts_mod.gather(clients, spec.name, spec.regions, spec.instance_type)
    return plan(spec, facts, package.build(gateway_architecture(spec.instance_type)),
                _rollout(Options(upgrade=upgrade)))


def up_link(target: Target, spec: LinkSpec, confirm: Confirm, progress: Progress | None = None,
            options: Options = Options()) -> list[Change]:
    """Make AWS match ``spec``; returns the changes made (empty: nothing to do, or not confirmed). A pass that
    made a planned switch (a site with two gateways whose active one was due: its standby replaced, then the
    switch) is followed by another, planned from fresh facts and confirmed again, which replaces the old active."""
    clients = options.clients or Clients(target, hooks=options.hooks, session=options.session)
    validate_regions(spec.regions, clients.known_regions())
    refuse_terraform(clients, spec.name, spec.regions, "up", options.max_workers)  # before even the lock
    # the facts are read under the lock; a refusal releases it, so a refused run leaves nothing behind
    lock = lock_link(clients, spec.name, spec.regions, f"linker up {' '.join(spec.regions)}",
                     force=options.force_unlock)
    try:
        wheel = package.build(gateway_architecture(spec.instance_type))
        made: list[Change] = []
        # a pass that switched a site's active gateway (--ha) left the old active to replace: the next pass does
        for run in range(ROLLING_PASSES):
            changes = _noted(plan(spec, facts_mod.gather(clients, spec.name, spec.regions, spec.instance_type,
                                                         options.max_workers), wheel, _rollout(options)))
            if not changes or not confirm(changes):
                break
            Applier(clients, spec.name, lock.owner + (f"/{run}" if run else ""), progress, options.max_workers,
                    options.poll, options.timeout, wheel).apply(changes)
            made += changes
            if not any(c.kind == Kind.ACTIVE_SWITCH for c in changes):
                break
        return made
    finally:
        lock.release()


def link_regions(clients: Clients, link: str, regions: Iterable[str] = ()) -> list[str]:
    """The regions where ``link`` has a parameter (its lock, membership or a site's); given ``regions``, only those.

    Every page of GetParametersByPath is followed: SSM may answer a page with no parameter and a NextToken. When
    the regions are discovered (none given), a region this identity may not use (an SCP, a region not opted in) is
    reported in a warning with its fix and the others are still searched; a region named by the user is an error."""
    candidates = list(regions)
    discovered = not candidates
    if discovered:
        ec2 = clients.ec2(DISCOVERY_REGION)
        with cloud_call("DescribeRegions", DISCOVERY_REGION):
            candidates = sorted(r["RegionName"] for r in ec2.describe_regions()["Regions"])

    def present(region: str) -> bool:
        ssm, token = clients.ssm(region), None
        try:
            with cloud_call("GetParametersByPath", region, naming.parameter_prefix(link)):
                while True:
                    page = ssm.get_parameters_by_path(Path=naming.parameter_prefix(link), Recursive=True,
                                                      MaxResults=10, **({"NextToken": token} if token else {}))
                    token = page.get("NextToken")
                    if page["Parameters"]:
                        return True
                    if not token:
                        return False
        except CloudError as err:  # CredentialsError too: a region not opted in rejects the credentials
            cause = err.__cause__
            if isinstance(cause, ClientError) and is_not_found(cause):
                return False
            if not discovered or not isinstance(cause, ClientError) or error_code(cause) not in REGION_REFUSED:
                raise
            log.warning("%s: skipped, this identity may not use the region (%s); if the link has resources "
                        "there, run again with --region %s and a role allowed there", region,
                        error_code(cause), region, extra={"region": region})
            return False

    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(present, candidates))
    return [r for r, ok in zip(candidates, found, strict=True) if ok]


def down_link(target: Target, link: str, confirm: Confirm, progress: Progress | None = None,
              regions: Iterable[str] = (), options: Options = Options()) -> list[Change]:
    """Remove every resource of ``link`` (only those); returns the changes made."""
    clients = options.clients or Clients(target, hooks=options.hooks, session=options.session)
    where = link_regions(clients, link, regions)
    if not where:
        return []
    refuse_terraform(clients, link, where, "down", options.max_workers)  # before even the lock
    lock = lock_link(clients, link, where, f"linker down --name {link}", force=options.force_unlock)
    try:
        facts = facts_mod.gather(clients, link, where, "t3.micro", options.max_workers)
        refuse_managed_elsewhere(facts, "down")
        changes = [c for rf in facts.regions for c in teardown(rf, link)] + forget_home(facts)
        if changes and confirm(changes):
            Applier(clients, link, lock.owner, progress, options.max_workers, options.poll,
                    options.timeout).apply(changes)
            return changes
        return []
    finally:
        lock.release()


def refuse_terraform(clients: Clients, link: str, regions: Iterable[str], command: str, max_workers: int = 8) -> None:
    """ManagedElsewhereError, before anything is written, when Terraform manages resources of ``link``."""
    found = facts_mod.terraform_managed(clients, link, regions, max_workers)
    if found:
        raise managed_by_terraform_error(link, found, command)


@dataclass(frozen=True)
class GatewayStatus:
    site: str
    region: str
    instance: str | None
    state: str | None
    eip: str | None
    health: GatewayHealth | None  # what the gateway agent last published; None: no (readable) report
    bootstrap: BootstrapReport | None = None  # what this instance's bootstrap last recorded
    # in a site with two gateways (docs/HA.md, linker.control.ha_status): "active" or "standby" (None: unknown)
    role: str | None = None
    ha: bool = False  # one of a site's two gateways: ``site`` then has a row per gateway

    def healthy(self) -> bool:
        """The gateway reported, has tunnels, and every one is healthy."""
        return self.health is not None and self.health.healthy and bool(self.health.tunnels)

    def bootstrap_summary(self, now: float | None = None) -> str | None:
        """One line on the bootstrap (``bootstrap failed at step download (attempt 3, 2 min ago): ...``); None
        when it recorded nothing."""
        return bootstrap_summary(self.bootstrap, time.time() if now is None else now) if self.bootstrap else None

    def to_dict(self) -> dict:
        boot = self.bootstrap.to_dict() | {"summary": self.bootstrap_summary()} if self.bootstrap else None
        out = {"site": self.site, "region": self.region, "instance": self.instance, "state": self.state,
               "eip": self.eip, "healthy": self.healthy(),
               "health": self.health.to_dict() if self.health else None, "bootstrap": boot}
        if self.ha:  # absent for a site with one gateway: its document is as before
            out["role"] = self.role
        return out


def bootstrap_summary(report: BootstrapReport, now: float) -> str:
    """What a person reads about a gateway's bootstrap, as of ``now`` (wall-clock seconds)."""
    when = f"attempt {report.attempt}, {_ago(now - report.at)}"
    if report.succeeded:
        return f"bootstrap succeeded ({when})"
    line = f"bootstrap failed at step {report.step or '?'} ({when}): {report.reason()}"
    if report.state == "failed":
        return line + "; it gave up (restart linker-bootstrap.service on the instance, or reboot it, to try again)"
    return line + "; retrying"


def status_link(target: Target, link: str, regions: Iterable[str] = (), hooks: tuple = (),
                session: Any = None) -> list[GatewayStatus]:
    """Each gateway of ``link`` and the health its agent published, from read-only clients; both gateways of a
    site with two, each with its own report and role."""
    clients = Clients(target, read_only=True, hooks=hooks, session=session)
    where = link_regions(clients, link, regions)
    if not where:
        return []
    facts = facts_mod.gather(clients, link, where, "t3.micro")
    out = []
    for rf in facts.regions:
        pair = site_gateways(rf, link, lambda text, site=rf.region: _health(text, site))
        if pair is not None:  # a site with two gateways: a row for each (linker.control.ha_status)
            boot = rf.parameter(naming.bootstrap_parameter(link, rf.region))
            out += [GatewayStatus(rf.region, rf.region, g.instance, g.state, g.eip, g.health,
                                  _bootstrap(boot, rf.region, g.instance), g.role, ha=True) for g in pair]
            continue
        instance = max(rf.instances, key=lambda i: (i.launch_time, i.id)) if rf.instances else None
        eip = rf.eips[0].public_ip if rf.eips else None
        health = _health(rf.parameter(naming.health_parameter(link, rf.region)), rf.region)
        boot = _bootstrap(rf.parameter(naming.bootstrap_parameter(link, rf.region)), rf.region,
                          instance.id if instance else None)
        if instance or eip or health:
            out.append(GatewayStatus(rf.region, rf.region, instance.id if instance else None,
                                     instance.state if instance else None, eip, health, boot))
    return out


def _bootstrap(text: str | None, site: str, instance: str | None) -> BootstrapReport | None:
    """The bootstrap record of ``instance``; None when absent, unreadable, or left by an instance since replaced."""
    if not text:
        return None
    try:
        report = BootstrapReport.from_json(text)
    except ContractError as exc:  # a newer schema too: the rest of the status still reads
        log.warning("the bootstrap record of %s is unreadable: %s", site, exc, extra={"site": site})
        return None
    if instance is not None and report.instance not in (instance, "unknown"):
        return None
    return report


def _health(text: str | None, site: str) -> GatewayHealth | None:
    """The report ``text``; None when absent or malformed (shown as no report). Raises ContractVersionError when
    a newer agent wrote it: this linker cannot say whether that gateway is healthy."""
    if not text:
        return None
    try:
        return GatewayHealth.from_json(text)
    except ContractVersionError:
        raise
    except ContractError as exc:
        log.warning("the health report of %s is unreadable: %s", site, exc, extra={"site": site})
        return None


def wait_healthy(target: Target, link: str, regions: Iterable[str], timeout: float, poll: float = 10.0) -> None:
    """Wait until every gateway reports every tunnel healthy; DegradedError when ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        gateways = status_link(target, link, regions)
        if gateways and all(g.healthy() for g in gateways):
            return
        if time.monotonic() > deadline:
            waiting = [g.site for g in gateways if not g.healthy()] or list(regions)
            raise DegradedError(f"link {link!r}: no recent handshake yet from {', '.join(waiting)} "
                                f"after {timeout:.0f} s",
                                fix=f"check `linker status --name {link}`; gateways take a few minutes to boot")
        time.sleep(poll)
