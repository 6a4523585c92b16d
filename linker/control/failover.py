"""``linker failover``: a planned switch of a site's active gateway (docs/HA.md, rule 8).

The controller does not move anything itself. It reads the site's active record (its SSM version is the epoch),
writes the planned switch ``{"to": instance, "epoch": epoch}`` and, if asked, waits until the active record names
that instance at a higher epoch: the named standby moves the routes, records and announces (rules 1 and 6), without
hold time or hysteresis, provided its tunnels work. A request is void after any switch, so a stale one can never
cause a failback, and writing it again (Overwrite) is harmless.

No lock is taken: the gateways fail over on their own at any time, so every controller run already copes with a
switch happening during it, and this command only asks for one.

Thread-safety: the functions share nothing; boto3 clients are thread-safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from linker import naming
from linker.contract import GatewayHealth, Membership, SiteEntry, active_record_instance, switch_request_value
from linker.control.aws import Clients, Target, cloud_call, is_not_found
from linker.control.operations import link_regions
from linker.errors import CloudError, ContractError, DegradedError, UserError

log = logging.getLogger("linker.control")
DEFAULT_TIMEOUT = 60.0
POLL = 0.5  # seconds between reads of the active record while waiting (a switch takes well under a second)


@dataclass(frozen=True)
class Switch:
    """A planned switch as asked: in ``site`` (its region) of ``link``, from the instance the active record names
    (``active``, at ``epoch``) to ``to``."""

    link: str
    site: str
    active: str
    to: str
    epoch: int

    def to_dict(self) -> dict[str, Any]:
        return {"link": self.link, "site": self.site, "from": self.active, "to": self.to, "epoch": self.epoch}


@dataclass(frozen=True)
class Outcome:
    """What waiting for ``switch`` found: ``status`` is "switched" (the record names ``to`` at a higher epoch),
    "superseded" (the record moved on without naming ``to``: the request is void), "timeout" or "requested" (not
    waited for); ``active`` and ``epoch`` as last read, ``seconds`` from the request to that read."""

    switch: Switch
    status: str
    active: str | None
    epoch: int
    seconds: float | None = None

    @property
    def switched(self) -> bool:
        return self.status == "switched"

    def to_dict(self) -> dict[str, Any]:
        return {**self.switch.to_dict(), "status": self.status, "switched": self.switched, "active": self.active,
                "active_epoch": self.epoch, "seconds": None if self.seconds is None else round(self.seconds, 3)}

    def error(self, timeout: float) -> DegradedError | None:
        """The error to exit with after waiting ``timeout`` seconds; None when the switch happened or was not
        waited for."""
        s = self.switch
        status = f"linker status --name {s.link}"
        if self.status == "timeout":
            now = (f"the active record still names {self.active} (epoch {self.epoch})" if self.active
                   else "the site has no active record any more")
            return DegradedError(
                f"site {s.site}: {s.to} did not take over within {timeout:g} s; {now}",
                fix=f"check `{status}`: {s.to} must be running and report its tunnels up (a standby takes over only "
                    f"while its tunnels work), and its agent's log (journalctl -u linker-gateway on it, through "
                    f"Session Manager). The request stays: {s.to} takes over as soon as it can, unless the site "
                    f"switches otherwise first")
        if self.status == "superseded":
            return DegradedError(
                f"site {s.site}: the site switched otherwise meanwhile: the active record names {self.active} "
                f"(epoch {self.epoch}); the request for {s.to} is void",
                fix=f"check `{status}` and run `linker failover {s.site}` again if the switch is still wanted")
        return None


def read_record(clients: Clients, link: str, site: str) -> tuple[str, int] | None:
    """(instance, epoch) of the site's active record; None when there is none. Raises CloudError, ContractError
    (a malformed record)."""
    name = naming.active_parameter(link, site)
    try:
        with cloud_call("GetParameter", site, name):
            parameter = clients.ssm(site).get_parameter(Name=name)["Parameter"]
    except CloudError as exc:  # cloud_call wraps ClientError: a missing record is an answer, not an error
        if isinstance(exc.__cause__, ClientError) and is_not_found(exc.__cause__):
            return None
        raise
    return active_record_instance(parameter["Value"]), int(parameter.get("Version", 1))


def _membership(clients: Clients, link: str, region: str) -> Membership | None:
    name = naming.membership_parameter(link)
    try:
        with cloud_call("GetParameter", region, name):
            value = clients.ssm(region).get_parameter(Name=name)["Parameter"]["Value"]
    except CloudError as exc:
        if isinstance(exc.__cause__, ClientError) and is_not_found(exc.__cause__):
            return None
        raise
    return Membership.from_json(value)


def _site(clients: Clients, link: str, site: str) -> SiteEntry:
    """The site's entry in the membership; UserError naming the fix when the link or the site does not exist."""
    status = f"`linker status --name {link}` lists its sites"
    membership = _membership(clients, link, site) if site in clients.known_regions() else None
    if membership is None:
        regions = link_regions(clients, link)
        found = next((m for m in (_membership(clients, link, r) for r in regions) if m), None)
        if not regions:
            raise UserError(f"there is no link named {link!r}", fix="check --name, --profile and --endpoint-url")
        names = ", ".join(found.site_names()) if found else "none readable"
        raise UserError(f"link {link!r} has no site {site!r} (its sites: {names})",
                        fix=f"name a site by its region; {status}")
    entry = membership.site(site)
    if entry is None:
        raise UserError(f"link {link!r} has no site {site!r} (its sites: {', '.join(membership.site_names())})",
                        fix=f"name a site by its region; {status}")
    if not entry.ha or len(entry.gateways) != 2:
        raise UserError(f"site {site} of link {link!r} has one gateway: there is no other to switch to",
                        fix="a site fails over between two gateways: `linker up REGIONS --ha` gives each site two "
                            "(docs/HA.md)")
    return entry


def plan_switch(clients: Clients, link: str, site: str, to: str | None = None) -> Switch:
    """The switch to ask for: to ``to``, else to the site's other gateway; a warning when ``to``'s own report shows
    tunnels down. Reads only. Raises UserError (no such link or site, a site with one gateway, no active record
    yet, ``to`` not one of the site's gateways or already active), CloudError."""
    entry = _site(clients, link, site)
    gateways = [g.instance for g in entry.gateways]
    record = read_record(clients, link, site)
    if record is None:
        raise UserError(f"site {site} of link {link!r} has no active gateway yet (no active record): its gateways "
                        "have not settled which one carries the traffic",
                        fix=f"gateways record it within seconds of booting; check `linker status --name {link}`")
    active, epoch = record
    if to is not None and to not in gateways:
        raise UserError(f"{to} is not a gateway of site {site} of link {link!r}",
                        fix=f"name one of its gateways with --to: {' or '.join(gateways)}")
    if to is None:
        others = [g for g in gateways if g != active]
        if len(others) != 1:  # the record names neither (a gateway since replaced): the site's own will correct it
            raise UserError(f"the active record of site {site} names {active}, which is not one of its gateways "
                            f"({', '.join(gateways)})", fix=f"name the gateway to switch to with --to: "
                                                           f"{' or '.join(gateways)}")
        to = others[0]
    if to == active:
        raise UserError(f"{to} is already the active gateway of site {site} (epoch {epoch})",
                        fix=f"to switch away from it: --to {next(g for g in gateways if g != to)}, or no --to")
    _warn_if_not_ready(clients, link, site, to)
    return Switch(link, site, active, to, epoch)


def _warn_if_not_ready(clients: Clients, link: str, site: str, to: str) -> None:
    """A warning (the request is still made) when ``to``'s own report shows it cannot take over now: it does so
    only while its tunnels work (docs/HA.md rule 8), and waiting for it would only time out."""
    name = naming.gateway_health_parameter(link, site, to)
    try:
        with cloud_call("GetParameter", site, name):
            report = GatewayHealth.from_json(clients.ssm(site).get_parameter(Name=name)["Parameter"]["Value"])
    except CloudError as exc:
        if isinstance(exc.__cause__, ClientError) and is_not_found(exc.__cause__):
            log.warning("%s has published no health report yet: it takes over only once its tunnels work", to,
                        extra={"region": site, "resource": to})
            return
        raise
    except ContractError:
        return  # unreadable or newer: the gateway decides, and ``linker status`` says more
    if not report.tunnels or not report.healthy:
        down = ", ".join(t.peer_site for t in report.tunnels if not t.healthy) or "none reported"
        log.warning("%s last reported tunnels down (%s): it takes over only once they work", to, down,
                    extra={"region": site, "resource": to})


def request(clients: Clients, switch: Switch) -> None:
    """Write the planned switch (Overwrite: asking again is harmless). Raises CloudError."""
    name = naming.switch_parameter(switch.link, switch.site)
    with cloud_call("PutParameter", switch.site, name):
        clients.ssm(switch.site).put_parameter(Name=name, Value=switch_request_value(switch.to, switch.epoch),
                                               Type="String", Overwrite=True)


def wait(clients: Clients, switch: Switch, timeout: float, poll: float = POLL,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Outcome:
    """Read the active record every ``poll`` seconds until it names ``switch.to`` at a higher epoch, names another
    instance at a higher epoch (superseded), or ``timeout`` passes. Raises CloudError, ContractError."""
    start = clock()
    while True:
        record = read_record(clients, switch.link, switch.site)
        elapsed = clock() - start
        active, epoch = record if record else (None, 0)
        if record and epoch > switch.epoch:
            return Outcome(switch, "switched" if active == switch.to else "superseded", active, epoch, elapsed)
        if elapsed >= timeout:
            return Outcome(switch, "timeout", active, epoch, elapsed)
        sleep(min(poll, max(0.0, timeout - elapsed)))


def failover(target: Target, link: str, site: str, to: str | None, confirm: Callable[[Switch], bool],
             timeout: float | None = DEFAULT_TIMEOUT, poll: float = POLL, session: Any = None) -> Outcome | None:
    """Plan the switch, ask ``confirm``, write the request and (unless ``timeout`` is None) wait for it. None when
    not confirmed. Raises UserError (see ``plan_switch``), CloudError, ContractError."""
    clients = Clients(target, session=session)
    switch = plan_switch(clients, link, site, to)
    if not confirm(switch):
        return None
    request(clients, switch)
    if timeout is None:
        return Outcome(switch, "requested", switch.active, switch.epoch)
    return wait(clients, switch, timeout, poll)
