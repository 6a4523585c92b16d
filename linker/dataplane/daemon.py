"""`linker daemon`: the protocol core, a TUN device, UDP sockets, the UAPI socket and one loop, put together.

Start-up: read the config (refusing a private key readable by others), create the device, bind, apply the peers,
route their AllowedIPs into the device, serve the UAPI. SIGHUP re-reads the file and applies it with syncconf
semantics: peers no longer in the file are removed, the others are updated in place, so unchanged peers keep their
sessions. SIGTERM / SIGINT: stop, remove the socket and the device (its routes go with it).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

from linker.dataplane import config as cfg
from linker.dataplane import privilege
from linker.dataplane.loop import Loop, offloads_from_env
from linker.dataplane.tun import RouteSync, TunDevice
from linker.dataplane.uapi import SOCKET_DIR, UapiServer, fmt_endpoint, handle_request
from linker.dataplane.udp import UdpSockets
from linker.errors import LinkerError, UserError
from linker.wg.device import Device
from linker.wg.keys import short

log = logging.getLogger("linker.daemon")


class DaemonError(UserError):
    """The daemon cannot start as asked (its socket is another daemon's, a bad LINKER_OFFLOADS): exit 2."""

    kind = "daemon_error"


class Daemon:
    """``config_path`` None: the device starts bare, as wireguard-go does for wg-quick (``linker-wg``): no key, no
    peers, no address, no routes of its own, a random port; everything comes over the UAPI socket, and the
    interface's removal (``wg-quick down`` deletes it) ends the daemon normally instead of as a failure."""

    def __init__(self, config_path: Path | None, interface: str, socket_dir: Path = SOCKET_DIR,
                 user: str | None = None) -> None:
        """``user``: once everything that needs root is open, run as this user (privilege.drop_to), keeping
        CAP_NET_ADMIN only if routes, MTU or fwmark may change later (not with ``Table = off`` in a file)."""
        self.config_path = config_path
        self.interface = cfg.check_interface_name(interface)
        if user is not None:
            privilege.resolve(user)  # an unknown user is refused before anything is made
        self.config = (cfg.load(config_path) if config_path is not None
                       else cfg.DaemonConfig(cfg.InterfaceConfig(None, manage_routes=False)))
        iface = self.config.interface
        self.device = Device(iface.private_key, rng=os.urandom, wallclock=time.time, mtu=iface.mtu)
        self.fwmark = iface.fwmark
        try:
            offloads = offloads_from_env(os.environ.get("LINKER_OFFLOADS"))
        except ValueError as exc:
            raise DaemonError(f"LINKER_OFFLOADS: {exc}", "unset it to use every offload") from None
        # Without --user the port is claimed first, so that a taken port fails before any interface is made. With
        # --user the sockets are made after the drop: the peer lanes that join the port later (udp.py) must belong
        # to the same user as the port's first socket (SO_REUSEPORT's rule). A port below 1024 then needs root.
        self.udp: UdpSockets | None = None
        if user is None:
            self.udp = UdpSockets(iface.listen_port, iface.fwmark, gro="gro" in offloads)
        self.tun: TunDevice | None = None
        self.uapi: UapiServer | None = None
        self.loop: Loop | None = None
        try:
            self.tun = TunDevice.create(self.interface, iface.mtu, iface.addresses, offload="tso" in offloads)
            self.routes = RouteSync(self.tun, iface.manage_routes)
            try:
                self.uapi = UapiServer(self.interface, socket_dir)
            except OSError as exc:
                raise DaemonError(f"cannot serve the configuration socket: {exc.strerror or exc}",
                                  f"is another daemon running for {self.interface}?") from None
            if user is not None:
                keep = config_path is None or iface.manage_routes or bool(iface.fwmark)
                who = privilege.drop_to(user, keep_net_admin=keep)
                log.info("running as uid %d, capabilities %s", who.uid, "CAP_NET_ADMIN" if keep else "none",
                         extra={"iface": self.interface})
                self.udp = UdpSockets(iface.listen_port, iface.fwmark, gro="gro" in offloads)
            assert self.udp is not None
            self.loop = Loop(self.device, self.tun.fd, self.udp, offloads)
            self.loop.add(self.uapi.listener.fileno(), self._uapi_accept)
            self._apply_peers(self.config, time.monotonic())
        except BaseException:
            self.close()
            raise
        log.info("listening on UDP port %d", self.listen_port,
                 extra={"iface": self.interface, "peer": short(self.device.public_key)})

    # ------------------------------------------------------------------ the UAPI's view of us (uapi.Host)

    @property
    def listen_port(self) -> int:
        return self.udp.port if self.udp is not None else 0

    def rebind(self, port: int) -> None:
        self.udp.bind(port, self.fwmark)
        assert self.loop is not None
        self.loop.watch_udp()
        self.loop.resync_lanes()  # the lanes closed with the old port
        log.info("listening on UDP port %d", self.udp.port, extra={"iface": self.interface})

    def set_fwmark(self, mark: int) -> None:
        self.fwmark = mark
        self.udp.set_fwmark(mark)

    # ------------------------------------------------------------------ configuration

    def _apply_peers(self, config: cfg.DaemonConfig, now: float) -> None:
        """Make the device's peers those of ``config`` (syncconf semantics), then sync the routes."""
        wanted = {p.public_key: p for p in config.peers}
        for public in list(self.device.peers):
            if public not in wanted:
                self.device.remove_peer(public)
                log.info("peer removed", extra={"iface": self.interface, "peer": short(public)})
        actions = []
        for p in config.peers:
            if p.public_key == self.device.public_key:
                log.warning("skipping a peer with this interface's own public key", extra={"iface": self.interface})
                continue
            fresh = p.public_key not in self.device.peers
            kwargs: dict = {"preshared_key": p.preshared_key, "allowed_ips": p.allowed_ips,
                            "persistent_keepalive": p.persistent_keepalive}
            if p.endpoint is not None:
                kwargs["endpoint"] = p.endpoint
            actions += self.device.set_peer(p.public_key, now, **kwargs)
            if fresh:
                log.info("peer added", extra={"iface": self.interface, "peer": short(p.public_key),
                                              "endpoint": "-" if p.endpoint is None else fmt_endpoint(p.endpoint)})
        self._sync_routes()
        if self.loop is not None:
            self.loop.resync_lanes()
            if actions:
                self.loop.perform(actions)

    def _sync_routes(self) -> None:
        self.routes.sync(net for net, _ in self.device.allowed_ips)

    def reload(self) -> None:
        """SIGHUP: re-read the file. A bad file is logged and the running configuration kept."""
        if self.config_path is None:
            log.info("SIGHUP: no configuration file to re-read (configure with `wg`)", extra={"iface": self.interface})
            return
        try:
            new = cfg.load(self.config_path)
        except LinkerError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc.message,
                      extra={"iface": self.interface})
            return
        now = time.monotonic()
        iface = new.interface
        if iface.private_key is not None and iface.private_key != self.device.private_key:
            self.device.set_private_key(iface.private_key, now)
            log.info("private key changed: sessions dropped", extra={"iface": self.interface,
                                                                       "peer": short(self.device.public_key)})
        if iface.listen_port and iface.listen_port != self.udp.port:
            try:
                self.rebind(iface.listen_port)
            except (OSError, LinkerError) as exc:
                log.error("cannot move to port %d, staying on %d: %s", iface.listen_port, self.udp.port, exc,
                          extra={"iface": self.interface})
        if iface.fwmark != self.fwmark:
            self.set_fwmark(iface.fwmark)
        if iface.mtu != self.device.mtu and self.tun is not None:
            self.tun.set_mtu(iface.mtu)
            self.device.mtu = iface.mtu
        self.routes.enabled = iface.manage_routes
        self._apply_peers(new, now)
        self.config = new
        log.info("configuration reloaded", extra={"iface": self.interface, "count": len(new.peers)})

    # ------------------------------------------------------------------ UAPI

    def _uapi_accept(self) -> None:
        assert self.uapi is not None and self.loop is not None
        conn = self.uapi.accept()
        if conn is not None:
            fd = conn.fileno()
            self.loop.add(fd, lambda: self._uapi_read(fd))

    def _uapi_read(self, fd: int) -> None:
        assert self.uapi is not None and self.loop is not None
        if not self.uapi.readable(fd, self._serve):
            self.loop.remove(fd)

    def _serve(self, request: str) -> str:
        before = set(self.device.peers)
        reply, actions, changed = handle_request(self.device, self, request, time.monotonic())
        if changed:
            after = set(self.device.peers)
            for public in after - before:
                log.info("peer added (uapi)", extra={"iface": self.interface, "peer": short(public)})
            for public in before - after:
                log.info("peer removed (uapi)", extra={"iface": self.interface, "peer": short(public)})
            self._sync_routes()
            if self.loop is not None:
                self.loop.resync_lanes()  # an endpoint may have been set, a peer removed
        if actions and self.loop is not None:
            self.loop.perform(actions)
        return reply

    # ------------------------------------------------------------------ running

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self.reload()
        elif signum == signal.SIGUSR1:
            log.info("counters: %s", self.stats(), extra={"iface": self.interface})
        else:
            log.info("stopping on %s", signal.Signals(signum).name, extra={"iface": self.interface})
            assert self.loop is not None
            self.loop.stop()

    def run(self) -> None:
        assert self.loop is not None
        self.loop.install_signal_handlers((signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1))
        try:
            self.loop.run(self._on_signal)
            failure = self.loop.failure
        finally:
            self.close()
        if failure and self.config_path is None:
            log.info("interface %s was removed: stopping", self.interface, extra={"iface": self.interface})
        elif failure:
            raise DaemonError(f"interface {self.interface}: {failure}",
                              "something removed it; start the daemon again (systemd's Restart= and the gateway "
                              "agent do)")

    def stats(self) -> str:
        """The loop's and the core's counters, one ``name=value`` list (no key material)."""
        merged = dict(self.device.counters)
        if self.loop is not None:
            merged.update(self.loop.stats())
        return " ".join(f"{k}={v}" for k, v in sorted(merged.items()))

    def close(self) -> None:
        if self.loop is not None:
            log.info("counters: %s", self.stats(), extra={"iface": self.interface})
        if self.uapi is not None:
            self.uapi.close()
            self.uapi = None
        if self.loop is not None:
            self.loop.close()
            self.loop = None
        if self.tun is not None:
            self.tun.close()
            self.tun = None
        if self.udp is not None:
            self.udp.close()
