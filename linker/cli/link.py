"""``linker up / plan / status / down / iam-policy``: parse options, resolve where to run, call the controller, show
the result.

On a terminal: rich tables and a line per change as it is made. With ``--json``: one JSON document on stdout and
logs on stderr. Errors are LinkerErrors; linker.cli turns them into exit codes and JSON error objects.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import click
from rich.table import Table

from linker import log as logsetup
from linker import naming
from linker.cli import local
from linker.cli.output import console, emit
from linker.control import operations
from linker.control.changes import Change
from linker.control.cost import estimate
from linker.control.ha_status import site_failovers
from linker.control.iam_policy import boundary_json, policy_json
from linker.control.partition import PARTITIONS
from linker.errors import DegradedError, UserError
from linker.spec import (
    DEFAULT_INSTANCE_TYPE,
    LinkSpec,
    parse_vpc_options,
    validate_instance_type,
    validate_link_name,
    validate_port,
)


def _target_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--profile", default=None, help="AWS credential profile (default: the standard chain)")(fn)
    fn = click.option("--endpoint-url", envvar="LINKER_ENDPOINT_URL", default=None,
                      help="send AWS calls here (moto, LocalStack); env LINKER_ENDPOINT_URL")(fn)
    fn = click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout, logs on stderr")(fn)
    fn = click.option("--name", default=naming.DEFAULT_LINK, show_default=True, help="link name")(fn)
    return fn


def _spec_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--port", type=int, default=naming.DEFAULT_PORT, show_default=True, help="UDP tunnel port")(fn)
    fn = click.option("--instance-type", default=DEFAULT_INSTANCE_TYPE, show_default=True)(fn)
    fn = click.option("--vpc", "vpcs", multiple=True, metavar="REGION=VPC-ID",
                      help="the VPC of a region (repeatable); otherwise the one tagged linker:site, the only "
                           "non-default one, or the default VPC")(fn)
    fn = click.option("--override-covering-routes", is_flag=True,
                      help="add linker's routes even where a less specific route of another owner (a transit "
                           "gateway, a VPC peering, a VPN, a prefix list, ...) covers a peer's CIDR: that "
                           "traffic then goes through linker")(fn)
    fn = click.option("--ha", is_flag=True,
                      help="two gateways per site, in two availability zones; the standby takes over in about 5 s "
                           "when the active fails (docs/HA.md)")(fn)
    fn = click.argument("regions", nargs=-1, required=True)(fn)
    return fn


def _upgrade_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--upgrade", is_flag=True,
                        help="replace gateways that run another linker build than this one, one by one, each "
                             "only once its successor is ready (no outage)")(fn)


def _sandbox_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--sandbox", is_flag=True,
                        help="a local cloud in network namespaces with an embedded AWS endpoint, instead of AWS "
                             "(root; `linker down --sandbox` removes it)")(fn)


def _spec(name: str, regions: tuple[str, ...], vpcs: tuple[str, ...], port: int, instance_type: str,
          override_covering_routes: bool = False, ha: bool = False) -> LinkSpec:
    return LinkSpec(validate_link_name(name), tuple(regions), validate_port(port),
                    validate_instance_type(instance_type), parse_vpc_options(vpcs, regions), override_covering_routes,
                    ha)


def _changes_table(changes: list[Change], title: str) -> Table:
    table = Table(title=title)
    for col in ("region", "action", "what", "target", "why"):
        table.add_column(col)
    for c in changes:
        table.add_row(c.region, c.action, c.kind, str(c.target), c.reason)
    return table


def _confirm(yes: bool, as_json: bool, show: Callable[[list[Change]], None]) -> Callable[[list[Change]], bool]:
    def confirm(changes: list[Change]) -> bool:
        if not as_json:
            show(changes)
        if yes:
            return True
        if as_json or not sys.stdin.isatty():
            raise UserError("not confirmed: this run is not interactive", fix="re-run with --yes to apply the changes")
        if not click.confirm(f"apply these {len(changes)} changes?", default=False):
            raise click.Abort()  # nothing was changed; the lock is released on the way out
        return True
    return confirm


def _progress(as_json: bool) -> Callable[[Change, str], None] | None:
    if as_json:
        return None
    out = console()

    def show(change: Change, status: str) -> None:
        if status == "done":
            out.print(f"  [green]✓[/] {change.region:<15} {change.action} {change.kind} {change.target}")
    return show


@click.command()
@_spec_options
@_target_options
@click.option("--yes", is_flag=True, help="apply without asking")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="wait until every tunnel reports a recent handshake")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="seconds --wait waits")
@click.option("--force-unlock", is_flag=True, help="break the link's lock even if its lease has not expired")
@_upgrade_option
@_sandbox_option
def up(regions: tuple[str, ...], vpcs: tuple[str, ...], instance_type: str, port: int, override_covering_routes: bool,
       ha: bool, name: str, as_json: bool, endpoint_url: str | None, profile: str | None, yes: bool, wait: bool,
       timeout: float, force_unlock: bool, upgrade: bool, sandbox: bool) -> None:
    """Link one VPC in each REGION (full mesh): gateways, tunnels, routes. Idempotent."""
    logsetup.setup("INFO" if as_json else "WARNING")
    spec = _spec(name, regions, vpcs, port, instance_type, override_covering_routes, ha)
    where = local.for_up(sandbox, spec.regions, endpoint_url, profile)
    show = lambda changes: console().print(_changes_table(changes, f"link {spec.name}: changes"))  # noqa: E731
    made = operations.up_link(where.target, spec, _confirm(yes, as_json, show), _progress(as_json),
                          operations.Options(force_unlock=force_unlock, upgrade=upgrade))
    proof = None
    if wait:
        # the sandbox proves the link through its workload hosts, then waits for the gateways' own reports
        proof = where.prove(spec, timeout)
        operations.wait_healthy(where.target, spec.name, spec.regions, timeout, poll=where.poll)
    gateways = operations.status_link(where.target, spec.name, spec.regions)
    if as_json:
        emit({"link": spec.name, "changes": [c.to_dict() for c in made], "applied": bool(made),
               "gateways": [g.to_dict() for g in gateways], **({"sandbox": proof} if proof else {})})
        return
    out = console()
    out.print(f"link {spec.name}: " + (f"{len(made)} changes applied" if made else "nothing to change"))
    _print_status(spec.name, gateways)
    for line in local.summary(proof):
        out.print(line, highlight=False)


@click.command()
@_spec_options
@_target_options
@_upgrade_option
def plan(regions: tuple[str, ...], vpcs: tuple[str, ...], instance_type: str, port: int,
         override_covering_routes: bool, ha: bool, name: str, as_json: bool, endpoint_url: str | None,
         profile: str | None, upgrade: bool) -> None:
    """Print every change `up` would make and a monthly cost estimate; change nothing."""
    logsetup.setup("INFO" if as_json else "WARNING")
    spec = _spec(name, regions, vpcs, port, instance_type, override_covering_routes, ha)
    changes = operations.plan_link(local.aws(endpoint_url, profile).target, spec, upgrade=upgrade)
    cost = estimate(len(spec.regions), spec.instance_type, 2 if spec.ha else 1)
    if as_json:
        emit({"link": spec.name, "changes": [c.to_dict() for c in changes], "cost": cost.to_dict()})
        return
    out = console()
    if changes:
        out.print(_changes_table(changes, f"link {spec.name}: {len(changes)} changes"))
    else:
        out.print(f"link {spec.name}: nothing to change, every resource exists as asked")
    out.print(cost.line())


def _status_table(link: str, gateways: list[operations.GatewayStatus]) -> Table:
    table = Table(title=f"link {link}")
    roles = any(g.ha for g in gateways)  # a column only when a site has two gateways: others show as before
    for col in ("site", "instance", *(("role",) if roles else ()), "state", "EIP", "peer", "last handshake", "rx",
                "tx", "tunnel"):
        table.add_column(col)
    for g in gateways:
        lead = (g.site, g.instance or "-", *((_role(g),) if roles else ()), g.state or "-", g.eip or "-")
        tunnels = g.health.tunnels if g.health else ()
        for t in tunnels:
            age = t.handshake_age
            table.add_row(*lead, t.peer_site,
                          "never" if age is None else f"{age:.0f} s ago", f"{t.rx_bytes:,}", f"{t.tx_bytes:,}",
                          "[green]up[/]" if t.healthy else "[red]down[/]")
        if not tunnels:
            table.add_row(*lead, "-", "never", "0", "0", "[yellow]no report[/]")
    return table


def _role(g: operations.GatewayStatus) -> str:
    """The gateway's role as the site's active record has it, and its own report's when that one disagrees."""
    reported = g.health.role if g.health else None
    shown = g.role or "-"
    return shown if reported in (None, g.role) else f"{shown} (reports {reported})"


def _bootstrap_lines(gateways: list[operations.GatewayStatus]) -> list[str]:
    """For each gateway that has not reported health, what its bootstrap recorded."""
    return [f"{g.site}: {g.bootstrap_summary()}" for g in gateways if g.health is None and g.bootstrap]


def _print_status(link: str, gateways: list[operations.GatewayStatus]) -> None:
    out = console()
    out.print(_status_table(link, gateways))
    now = time.time()
    for line in [s.line(now) for s in site_failovers(gateways)] + _bootstrap_lines(gateways):
        out.print(line, highlight=False, markup=False)


@click.command()
@_target_options
@click.option("--region", "regions", multiple=True, help="look only here (default: every enabled region)")
@_sandbox_option
def status(name: str, as_json: bool, endpoint_url: str | None, profile: str | None,
           regions: tuple[str, ...], sandbox: bool) -> None:
    """Each gateway of the link and its tunnels' health, as the gateways report it. Exit 4 when degraded."""
    logsetup.setup("INFO" if as_json else "WARNING")
    where = local.for_status(sandbox, endpoint_url, profile)
    gateways = operations.status_link(where.target, validate_link_name(name), where.regions(regions))
    if not gateways:
        raise UserError(f"there is no link named {name!r}", fix="check --name, --profile and --endpoint-url")
    # a site with two gateways is named with the gateway that is not healthy
    degraded = list(dict.fromkeys(f"{g.site} ({g.instance})" if g.ha else g.site
                                  for g in gateways if not g.healthy()))
    err = DegradedError(f"link {name!r} is degraded: no recent handshake reported by {', '.join(degraded)}",
                        fix="gateways report within seconds of a change and every 30 s; a new gateway needs a few "
                            "minutes to boot (see `linker gateway status` on it through SSM Session Manager)")
    if as_json:
        doc: dict[str, Any] = {"link": name, "healthy": not degraded, "gateways": [g.to_dict() for g in gateways]}
        pairs = site_failovers(gateways)
        if pairs:  # only when a site has two gateways: a link without one reads as before
            doc["sites"] = [s.to_dict() for s in pairs]
        if degraded:
            # one document on stdout: the status and the error together, then the documented exit code
            emit({**doc, **err.to_dict()})
            click.echo(f"error: {err.message}", err=True)
            sys.exit(int(err.exit_code))
        emit(doc)
        return
    _print_status(name, gateways)
    if degraded:
        raise err


@click.command()
@_target_options
@click.option("--region", "regions", multiple=True, help="look only here (default: every enabled region)")
@click.option("--yes", is_flag=True, help="remove without asking")
@click.option("--force-unlock", is_flag=True, help="break the link's lock even if its lease has not expired")
@_sandbox_option
def down(name: str, as_json: bool, endpoint_url: str | None, profile: str | None, regions: tuple[str, ...],
         yes: bool, force_unlock: bool, sandbox: bool) -> None:
    """Remove every resource of the link, and only those (routes linker added, not others)."""
    logsetup.setup("INFO" if as_json else "WARNING")
    link = validate_link_name(name)
    show = lambda changes: console().print(_changes_table(changes, f"link {link}: removals"))  # noqa: E731
    if sandbox:  # every link of the sandbox through the same `down`, then the sandbox itself
        done = local.down_sandbox(link, _confirm(yes, as_json, show), _progress(as_json),
                               operations.Options(force_unlock=force_unlock), endpoint_url, profile)
        if as_json:
            emit({"link": link, "changes": [c.to_dict() for c in done["changes"]], "removed": bool(done["changes"]),
                   "sandbox": {"removed": done["sandbox_removed"], "namespaces": done["namespaces"]}})
        else:
            console().print(f"sandbox: {len(done['changes'])} removals applied; " +
                             (f"{len(done['namespaces'])} namespaces removed" if done["sandbox_removed"]
                              else "no sandbox was running"))
        return
    made = operations.down_link(local.aws(endpoint_url, profile).target, link, _confirm(yes, as_json, show),
                            _progress(as_json), regions, operations.Options(force_unlock=force_unlock))
    if as_json:
        emit({"link": link, "changes": [c.to_dict() for c in made], "removed": bool(made)})
    else:
        console().print(f"link {link}: " + (f"{len(made)} removals applied" if made else "nothing to remove"))


@click.command("iam-policy")
@click.option("--boundary", is_flag=True,
              help="print instead the permissions boundary of the roles linker makes (an administrator creates it "
                   "once per account: see the README's Permissions)")
@click.option("--partition", type=click.Choice(PARTITIONS), default="aws", show_default=True,
              help="the partition of the account: aws-cn for China, aws-us-gov for GovCloud")
def iam_policy(boundary: bool, partition: str) -> None:
    """Print the least-privilege IAM policy the controller needs (JSON)."""
    click.echo(boundary_json(partition) if boundary else policy_json(partition))
