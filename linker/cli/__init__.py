"""The ``linker`` command line, the top floor: parse, call the library, map ``LinkerError`` to an exit code.

Subcommands live in this package, one module per area (``daemon``, ``failover``, ``gateway``, ``link``,
``sandbox``), and are imported lazily, so ``linker genkey`` does not pay for boto3, and an install that lacks an
area (a gateway ships no controller or sandbox) lists only the commands it has. Nothing below this package imports it.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import click

from linker import __version__
from linker.errors import ExitCode, LinkerError

# command name -> "module:attribute" of a click.Command
COMMANDS: dict[str, str] = {
    "genkey": "linker.cli.daemon:genkey",
    "pubkey": "linker.cli.daemon:pubkey",
    "genpsk": "linker.cli.daemon:genpsk",
    "daemon": "linker.cli.daemon:daemon",
    "systemd-unit": "linker.cli.daemon:systemd_unit",
    "up": "linker.cli.link:up",
    "plan": "linker.cli.link:plan",
    "status": "linker.cli.link:status",
    "down": "linker.cli.link:down",
    "failover": "linker.cli.failover:failover",
    "iam-policy": "linker.cli.link:iam_policy",
    "gateway": "linker.cli.gateway:gateway",
    "sandbox": "linker.cli.sandbox:sandbox",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("linker."):
                return None  # that area is not built yet
            raise
        return getattr(module, attr, None)


def json_requested(argv: list[str]) -> bool:
    return "--json" in argv


def emit_error(err: LinkerError, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(err.to_dict()) + "\n")
    click.echo(f"error: {err.message}", err=True)
    if err.fix:
        click.echo(f"  fix: {err.fix}", err=True)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="linker")
def cli() -> None:
    """Link private networks across cloud regions over WireGuard-protocol tunnels.

    \b
    Exit codes: 0 ok, 1 internal error (a bug), 2 bad input, 3 cloud error,
                4 link degraded, 5 lock held by another run, 130 interrupted.
    """


def main(argv: list[str] | None = None) -> Any:
    args = sys.argv[1:] if argv is None else argv
    try:
        return cli.main(args=args, prog_name="linker", standalone_mode=False)
    except LinkerError as err:
        emit_error(err, json_requested(args))
        sys.exit(int(err.exit_code))
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except click.ClickException as exc:
        exc.show()
        sys.exit(int(ExitCode.USER))
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))


if __name__ == "__main__":
    main()
