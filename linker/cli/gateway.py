"""`linker gateway run` and `linker gateway status`: the commands of a gateway host."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.table import Table

from linker import log as logsetup
from linker.cli.output import console
from linker.gateway import wgctl
from linker.gateway.agent import Agent, LastGood
from linker.gateway.health import assess
from linker.gateway.settings import DEFAULT_PATH, AgentSettings


@click.group()
def gateway() -> None:
    """Commands that run on a gateway host."""


@gateway.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=DEFAULT_PATH, show_default=True)
@click.option("--log-level", default="info", show_default=True)
def run(config_path: Path, log_level: str) -> None:
    """Run the gateway agent in the foreground (systemd starts it at boot)."""
    logsetup.setup(log_level)
    Agent(AgentSettings.load(config_path)).run()


@gateway.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=DEFAULT_PATH, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def status(config_path: Path, as_json: bool) -> None:
    """This gateway's tunnels: peer site, endpoint, handshake age, bytes each way."""
    settings = AgentSettings.load(config_path)
    cached = LastGood(settings.last_good_path).load()
    if cached is None:
        raise click.ClickException("this gateway has not received the link's membership yet")
    membership, keys = cached
    state = wgctl.get(wgctl.socket_path(settings.interface))
    health = assess(state, membership, settings.site, keys, time.time())
    if as_json:
        click.echo(json.dumps(health.to_dict(), indent=2, sort_keys=True))
        return
    table = Table(title=f"link {health.link}, site {health.site}")
    for col in ("peer site", "endpoint", "last handshake", "rx", "tx", "state"):
        table.add_column(col)
    for t in health.tunnels:
        age = "never" if t.handshake_age is None else f"{t.handshake_age:.0f} s ago"
        table.add_row(t.peer_site, t.endpoint or "-", age, f"{t.rx_bytes:,}", f"{t.tx_bytes:,}",
                      "[green]up[/]" if t.healthy else "[red]down[/]")
    console().print(table)
