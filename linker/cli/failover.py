"""``linker failover SITE [--to INSTANCE]``: a planned switch of a site's active gateway (docs/HA.md, rule 8).

Thin: resolves where to run as ``status`` does (``--sandbox``, ``--endpoint-url``, ``--profile``), confirms, and
prints what ``linker.control.failover`` found: one line on a terminal, one JSON document with ``--json``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from linker import log as logsetup
from linker.cli import local
from linker.cli.link import _sandbox_option, _target_options
from linker.cli.output import console, emit
from linker.control import failover as control
from linker.errors import UserError
from linker.spec import validate_link_name


def _confirm(yes: bool, as_json: bool) -> Callable[[control.Switch], bool]:
    def confirm(switch: control.Switch) -> bool:
        if yes:
            return True
        if as_json or not sys.stdin.isatty():
            raise UserError("not confirmed: this run is not interactive", fix="re-run with --yes to switch")
        return click.confirm(f"site {switch.site} of link {switch.link}: make {switch.to} the active gateway "
                             f"instead of {switch.active}?", default=False)
    return confirm


def describe(outcome: control.Outcome) -> str:
    """The one line a person reads."""
    s = outcome.switch
    where = f"link {s.link}, site {s.site}"
    if outcome.status == "requested":
        return (f"{where}: asked {s.to} to take over from {s.active} (epoch {s.epoch}); "
                f"`linker status --name {s.link}` shows when it has")
    if outcome.switched:
        return (f"{where}: {s.to} is the active gateway (was {s.active}), epoch {s.epoch} -> {outcome.epoch}, "
                f"{outcome.seconds or 0.0:.1f} s after the request")
    return f"{where}: {s.to} is not the active gateway; {outcome.active} is (epoch {outcome.epoch})"


@click.command("failover")
@click.argument("site")
@click.option("--to", "to", metavar="INSTANCE", default=None,
              help="the gateway to make active (default: the site's other gateway)")
@_target_options
@click.option("--yes", is_flag=True, help="switch without asking")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="wait until the active record names the new gateway")
@click.option("--timeout", type=float, default=control.DEFAULT_TIMEOUT, show_default=True,
              help="seconds --wait waits")
@_sandbox_option
def failover(site: str, to: str | None, name: str, as_json: bool, endpoint_url: str | None, profile: str | None,
             yes: bool, wait: bool, timeout: float, sandbox: bool) -> None:
    """Make the standby gateway of SITE (a site with two, `up --ha`) the active one: a planned switch, hitless."""
    logsetup.setup("INFO" if as_json else "WARNING")
    link = validate_link_name(name)
    if timeout <= 0:
        raise UserError(f"--timeout {timeout:g} is not a positive number of seconds", fix="for example --timeout 60")
    where = local.for_status(sandbox, endpoint_url, profile)
    outcome = control.failover(where.target, link, site, to, _confirm(yes, as_json), timeout if wait else None)
    if outcome is None:
        raise click.Abort()  # not confirmed: nothing was written
    err = outcome.error(timeout)
    if as_json:
        doc = outcome.to_dict()
        if err is not None:  # one document on stdout: the outcome and the error together, then the exit code
            emit({**doc, **err.to_dict()})
            click.echo(f"error: {err.message}", err=True)
            if err.fix:
                click.echo(f"  fix: {err.fix}", err=True)
            sys.exit(int(err.exit_code))
        emit(doc)
        return
    console().print(describe(outcome), highlight=False, markup=False)
    if err is not None:
        raise err
