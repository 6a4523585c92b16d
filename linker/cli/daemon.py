"""`linker genkey | pubkey | genpsk | daemon`: byte-compatible with `wg genkey | wg pubkey | wg genpsk`."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import click

from linker import log as logsetup
from linker.errors import KeyFileError
from linker.wg.keys import from_base64, generate_preshared_key, generate_private_key, public_key_of, to_base64


def _warn_if_world_accessible() -> None:
    """As `wg genkey`: a secret written to a file that others can read deserves a warning."""
    try:
        st = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError):
        return
    if stat.S_ISREG(st.st_mode) and st.st_mode & stat.S_IRWXO:
        click.echo("Warning: writing to world accessible file.\nConsider setting the umask to 077 and trying "
                   "again.", err=True)


@click.command()
def genkey() -> None:
    """Print a new private key (base64), as `wg genkey`."""
    _warn_if_world_accessible()
    click.echo(to_base64(generate_private_key(os.urandom)))


@click.command()
def genpsk() -> None:
    """Print a new preshared key (base64), as `wg genpsk`."""
    _warn_if_world_accessible()
    click.echo(to_base64(generate_preshared_key(os.urandom)))


@click.command()
def pubkey() -> None:
    """Read a private key (base64) on stdin, print its public key, as `wg pubkey`."""
    text = sys.stdin.read()
    try:
        key = from_base64(text)
    except ValueError as exc:
        raise KeyFileError(f"stdin is not a private key: {exc}", "pipe it a key: linker genkey | linker pubkey") \
            from None
    click.echo(to_base64(public_key_of(key)))


@click.command()
@click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--interface", "-i", default=None, help="TUN interface name (default: the file's name, as wg-quick)")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
@click.option("--user", default=None, metavar="NAME",
              help="after opening the device and sockets as root, run as this user (keeping only CAP_NET_ADMIN)")
def daemon(config: Path, interface: str | None, log_level: str, user: str | None) -> None:
    """Run the WireGuard-protocol TUN daemon in the foreground for CONFIG (a wg-quick file).

    \b
    SIGHUP re-reads CONFIG and applies peer changes without dropping unchanged peers' sessions.
    SIGTERM or SIGINT stops it and removes its interface. SIGUSR1 logs its counters.
    `wg show IFACE` works while it runs (as root: the socket stays root's after --user).

    \b
    LINKER_OFFLOADS=gso,gro,coalesce (the default) batches packets at the kernel boundary;
    a subset, or "none", rules techniques out when troubleshooting a kernel or NIC; adding
    "tso" reads TCP super-segments from the TUN device (cut and checksummed in Python).
    """
    from linker.dataplane.config import interface_name_for
    from linker.dataplane.daemon import Daemon  # pyroute2 is paid for only here

    logsetup.setup(log_level)
    Daemon(config, interface or interface_name_for(config), user=user).run()


UNITS = {"daemon": "linker-daemon@.service"}


@click.command("systemd-unit")
@click.argument("which", type=click.Choice(sorted(UNITS)), default="daemon")
def systemd_unit(which: str) -> None:
    """Print linker's hardened systemd unit for WHICH (daemon: the template unit linker-daemon@IFACE).

    \b
    linker systemd-unit daemon > /etc/systemd/system/linker-daemon@.service
    """
    from importlib.resources import files

    click.echo(files("linker").joinpath("templates", "systemd", UNITS[which]).read_text(), nl=False)
