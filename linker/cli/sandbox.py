"""`linker sandbox exec | hosts | serve`: look inside the local sandbox cloud (``--sandbox`` of up/status/down)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from linker.cli.output import console
from linker.errors import UserError
from linker.sandbox import layout as layout_mod
from linker.sandbox.layout import host_environment
from linker.sandbox.lifecycle import Sandbox
from linker.sandbox.preflight import START_HINT, require_root


def running() -> Sandbox:
    require_root()
    found = Sandbox.existing()
    if found is None:
        raise UserError("no sandbox is running", fix=START_HINT)
    return found


def descendants(pid: int) -> list[int]:
    """The process's children, grandchildren, ... (from /proc)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            out += children
            todo += children
    return out


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def host_rows(sandbox: Sandbox) -> list[dict[str, Any]]:
    rows = []
    for host in sorted(sandbox.hosts(), key=lambda h: (h["region"], h["role"], h["instance"])):
        services = {}
        for name, s in host.get("services", {}).items():
            children = descendants(s["pid"]) if s.get("pid") else []
            services[name] = {**s, "processes": [{"pid": p, "command": command_line(p)} for p in children]}
        rows.append({**host, "services": services})
    return rows


@click.group()
def sandbox() -> None:
    """The local sandbox cloud that `linker up REGION... --sandbox` builds (root)."""


@sandbox.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("region")
@click.option("--gateway", is_flag=True, help="run it on the region's gateway host instead of its workload host")
@click.option("--name", default="default", show_default=True, help="link name (with --gateway)")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(region: str, gateway: bool, name: str, command: tuple[str, ...]) -> None:
    """Run COMMAND on REGION's workload host (or its gateway host), e.g. `linker sandbox exec eu-west-1 -- ip a`."""
    found = running()
    if gateway:
        hosts = found.hosts(region, link=name)
        if not hosts:
            raise UserError(f"link {name!r} has no gateway host in {region} in the sandbox",
                            fix="check the region and --name; `linker sandbox hosts` lists the hosts")
        host = hosts[0]
    else:
        host = found.workload(region)
    argv = [*found.enter(host), *command]
    env = {**host_environment(found.access_key), "TERM": os.environ.get("TERM", "dumb")}
    os.execvpe(argv[0], argv, env)  # noqa: S606


@sandbox.command()
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def hosts(as_json: bool) -> None:
    """The sandbox's hosts: instance, namespace, address, boot, units and their processes."""
    found = running()
    rows = host_rows(found)
    if as_json:
        sys.stdout.write(json.dumps({"endpoint": found.endpoint, "directory": str(found.layout.root),
                                     "hosts": rows}, indent=2, sort_keys=True) + "\n")
        return
    table = Table(title=f"sandbox {found.layout.root} (AWS endpoint {found.endpoint})")
    for col in ("region", "role", "instance", "address", "public", "namespace", "boot", "units (pid, restarts)"):
        table.add_column(col)
    for h in rows:
        units = ", ".join(f"{n} {s['state']} ({s.get('pid') or '-'}, {s['restarts']})"
                          for n, s in h["services"].items()) or "-"
        table.add_row(h["region"], h["role"], h["instance"], h["private_ip"], h.get("public_ip") or "-", h["netns"],
                      h["boot"], units)
    console().print(table)


@sandbox.command(hidden=True)
def serve() -> None:
    """Run the sandbox supervisor in the foreground (`linker up --sandbox` starts it in the background)."""
    from linker.sandbox.supervisor import serve as run

    sys.exit(run(layout_mod.current()))
