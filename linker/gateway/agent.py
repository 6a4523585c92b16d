"""`linker gateway run`: the agent on a gateway host.

It generates the private key on first boot, runs the daemon (a supervised child), turns on forwarding and MSS
clamping, publishes its instance's own public key (its readiness record: the controller moves the site to this
instance only once it exists) and the site's key once the membership names this instance as the site's gateway
(peers of older agents read that one; linker.control.rollout has the order), then loops: read the membership and
peers' keys from AWS (backing off when AWS is unreachable, keeping the last good configuration on disk and in the
daemon), apply changes live with syncconf semantics, publish health (SSM + CloudWatch) and serve it to Prometheus
on loopback. In a site with two gateways it also runs failover (``linker.gateway.agent_ha``, docs/HA.md).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from linker import __version__
from linker.contract import GatewayHealth, Membership
from linker.errors import ContractError
from linker.gateway import identity, system, wgctl
from linker.gateway.agent_ha import HaAgent
from linker.gateway.cloud import Cloud, CloudUnavailable
from linker.gateway.health import assess, prometheus_text
from linker.gateway.keyfile import ensure_private_key
from linker.gateway.membership import desired_peers
from linker.gateway.settings import AgentSettings
from linker.gateway.supervisor import DaemonSupervisor
from linker.wg.keys import from_base64, public_key_of, short, to_base64

log = logging.getLogger("linker.gateway")

MIN_PUBLISH_GAP = 5.0  # seconds between health reports that a change brings forward (a flapping tunnel, SSM's rate)


class _Stopping(BaseException):
    """SIGTERM/SIGINT arrived while the agent waited on AWS: that call is abandoned and the agent stops.

    A BaseException, as KeyboardInterrupt is, so that no ``except Exception`` in boto3 or urllib3 swallows it.
    """


class LastGood:
    """The last membership and peer keys that were applied, kept on disk for restarts without AWS; and which
    gateway of each remote site with two held its CIDRs (so that a restarted agent does not move them back to the
    lower instance id until it reads the site's record)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._saved = ""

    def load(self) -> tuple[Membership, dict[str, bytes]] | None:
        try:
            doc = json.loads(self.path.read_text())
            keys = {site: from_base64(k) for site, k in doc["keys"].items()}
            return Membership.from_json(doc["membership"]), keys
        except (OSError, ValueError, KeyError, ContractError):
            return None

    def actives(self) -> dict[str, str]:
        """Remote site -> the gateway that held its CIDRs, as last saved; empty when none or unreadable."""
        try:
            found = json.loads(self.path.read_text()).get("actives", {})
        except (OSError, ValueError, AttributeError):
            return {}
        if not isinstance(found, dict):
            return {}
        return {s: i for s, i in found.items() if isinstance(s, str) and isinstance(i, str)}

    def save(self, membership: Membership, keys: dict[str, bytes], actives: dict[str, str] | None = None) -> None:
        doc: dict[str, object] = {"membership": membership.to_json(),
                                  "keys": {s: to_base64(k) for s, k in sorted(keys.items())}}
        if actives:  # absent otherwise: a file as before HA
            doc["actives"] = dict(sorted(actives.items()))
        text = json.dumps(doc)
        if text == self._saved:
            return  # unchanged: no disk write every poll
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)
        self._saved = text


def render_daemon_config(settings: AgentSettings, private_key: bytes, peers: list[wgctl.PeerSpec]) -> str:
    lines = ["[Interface]", f"PrivateKey = {to_base64(private_key)}", f"ListenPort = {settings.listen_port}",
             f"MTU = {settings.mtu}"]
    for p in peers:
        lines += ["", "[Peer]", f"PublicKey = {to_base64(p.public_key)}", f"AllowedIPs = {', '.join(p.allowed_ips)}"]
        if p.endpoint:
            lines.append(f"Endpoint = {p.endpoint}")
        if p.persistent_keepalive:
            lines.append(f"PersistentKeepalive = {p.persistent_keepalive}")
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(path.with_suffix(".tmp"), path)


class MetricsServer:
    """Prometheus text on http://<metrics_address>:<port>/metrics, from a thread; loopback by default."""

    def __init__(self, address: str, port: int) -> None:
        self.text = "# no health yet\n"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.rstrip("/") not in ("/metrics", ""):
                    self.send_error(404)
                    return
                body = outer.text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Agent:
    def __init__(self, settings: AgentSettings, cloud: Cloud | None = None) -> None:
        self.settings = settings
        self.cloud = cloud or Cloud(settings.link, settings.site, settings.region)
        self.last_good = LastGood(settings.last_good_path)
        self.supervisor = DaemonSupervisor.for_config(settings.daemon_config_path, settings.interface,
                                                      settings.daemon_command or None, settings.daemon_user)
        self.private_key = b""
        self._written_config = ""
        self._published_shape: tuple = ()  # (peer site, healthy) of each tunnel, role, last failover: as published
        self._last_publish = float("-inf")
        self.membership: Membership | None = None
        self.keys: dict[str, bytes] = {}
        self.applied: dict[bytes, wgctl.PeerSpec] = {}
        self.key_published = False  # the site's key
        self.instance_id = ""  # learnt at start (linker.gateway.identity); "" when unknown
        self.instance_key_published = False
        self.health: GatewayHealth | None = None
        self.metrics: MetricsServer | None = None
        self._stop = threading.Event()
        self._in_cloud_call = False
        self._backoff = settings.poll_interval
        self._next_poll = 0.0
        self._next_health = 0.0
        self.ha = HaAgent(settings, self.cloud, self.apply)  # a site with two gateways (docs/HA.md)

    # --------------------------------------------------------------- start-up

    def start(self) -> None:
        s = self.settings
        Path(s.state_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
        self.private_key = ensure_private_key(s.key_path)
        self.instance_id = identity.instance_id(s)
        log.info("gateway key ready", extra={"peer": short(public_key_of(self.private_key)), "site": s.site})
        system.enable_forwarding()
        cached = self.last_good.load()
        if cached is not None:
            self.membership, self.keys = cached
            self.ha.actives = self.last_good.actives()
            log.info("starting from the last good configuration", extra={"site": s.site,
                                                                          "count": len(self._desired())})
        self._write_daemon_config(self._desired())
        self.applied = {p.public_key: p for p in self._desired()}
        if self.membership is not None:  # failover runs from the last good membership while AWS is away
            self.ha.update(self.membership, self.instance_id)
        if not self.supervisor.ensure_running(time.monotonic()):
            log.error("daemon did not start; will retry", extra={"iface": s.interface})
        if s.clamp_mss:
            try:
                system.clamp_mss(s.interface)
            except (OSError, subprocess.CalledProcessError) as exc:
                # no clamp is a risk for TCP over paths with a smaller MTU, not a reason to keep the tunnels down
                detail = getattr(exc, "stderr", None) or exc
                log.error("cannot clamp TCP MSS, running without: %s", str(detail).strip(),
                          extra={"iface": s.interface})

    def _desired(self) -> list[wgctl.PeerSpec]:
        if self.membership is None:
            return []
        return desired_peers(self.membership, self.settings.site, self.keys, self.ha.actives)

    def _write_daemon_config(self, peers: list[wgctl.PeerSpec]) -> None:
        text = render_daemon_config(self.settings, self.private_key, peers)
        if text != self._written_config:  # unchanged: no disk write every poll
            write_private(self.settings.daemon_config_path, text)
            self._written_config = text

    # --------------------------------------------------------------- the loop

    @contextmanager
    def _cloud_io(self) -> Iterator[None]:
        """Mark a wait on AWS, which a stop signal may cut short (a blackholed endpoint takes many seconds to
        time out; systemd's stop, and a restart, should not wait for it). Nothing local changes inside."""
        self._in_cloud_call = True
        try:
            yield
        finally:
            self._in_cloud_call = False

    def _on_signal(self, *_: object) -> None:
        self._stop.set()
        if self._in_cloud_call:
            raise _Stopping

    def poll_cloud(self) -> bool:
        """Read the membership and keys from AWS and apply them. False (and nothing changed) on failure."""
        try:
            with self._cloud_io():
                membership, keys = self._read_cloud()
        except (CloudUnavailable, ContractError) as exc:
            log.warning("cannot read the link from AWS, keeping the last good configuration: %s", exc,
                        extra={"site": self.settings.site})
            return False
        self.membership, self.keys = membership, keys
        self.apply()
        self.last_good.save(membership, keys, self.ha.actives)
        self.ha.update(membership, self.instance_id)
        if any(s.ha for s in membership.peers_of(self.settings.site)):
            with self._cloud_io():
                self.ha.poll(membership)
        return True

    def _read_cloud(self) -> tuple[Membership, dict[str, bytes]]:
        public = public_key_of(self.private_key)
        if self.instance_id and not self.instance_key_published:
            self.cloud.publish_public_key(public, self.instance_id)
            self.instance_key_published = True
            log.info("ready: the instance's public key is published", extra={"site": self.settings.site,
                                                                             "resource": self.instance_id})
        membership = self.cloud.membership()
        if not self.key_published and self._serves(membership):
            self.cloud.publish_public_key(public)
            self.key_published = True
            log.info("public key published", extra={"site": self.settings.site})
        keys = self.cloud.peer_public_keys(membership, self.keys)
        if any(s.ha for s in membership.peers_of(self.settings.site)):  # both gateways' own keys, by instance id
            keys.update(self.cloud.peer_gateway_keys(membership, self.keys))
        return membership, keys

    def _serves(self, membership: Membership) -> bool:
        """Whether this instance is the site's gateway: the membership names it, or names none (a controller or
        Terraform without per-instance keys), or this agent does not know its instance."""
        entry = membership.site(self.settings.site)
        return entry is None or entry.gateway is None or not self.instance_id or entry.gateway == self.instance_id

    def apply(self) -> None:
        """Bring the daemon's peers to the desired ones. Called by the agent's loop and, when a remote site's
        active gateway changes, by the failover thread: one at a time (``ha.lock``)."""
        with self.ha.lock:
            self._apply()

    def _apply(self) -> None:
        desired = self._desired()
        try:
            current = wgctl.get(self.supervisor.socket)
            request = wgctl.plan_sync(desired, self.applied, current)
            if request is not None:
                wgctl.set_(self.supervisor.socket, request)
                log.info("peers applied", extra={"count": len(desired), "site": self.settings.site})
        except wgctl.UapiError as exc:
            log.warning("cannot configure the daemon: %s", exc.message, extra={"iface": self.settings.interface})
            return
        self.applied = {p.public_key: p for p in desired}
        self._write_daemon_config(desired)

    def report_health(self, now: float) -> None:
        """Assess the tunnels (locally, every step) and publish: on schedule, or at once when a tunnel came up or
        went down, so `linker up --wait` and alarms see a change within seconds, not a health interval later."""
        if self.membership is None:
            return
        try:
            state = wgctl.get(self.supervisor.socket)
        except wgctl.UapiError:
            return
        self.ha.sessions(state, time.time())
        # a remote site with two gateways: the tunnel to the one that holds its CIDRs (both are kept warm)
        keys = {**self.keys, **{site: self.keys[i] for site, i in self.ha.actives.items() if i in self.keys}}
        self.health = self.ha.decorate(dataclasses.replace(
            assess(state, self.membership, self.settings.site, keys, time.time()),
            instance=self.instance_id or None, version=__version__))
        if self.metrics is not None:
            self.metrics.text = prometheus_text(self.health) + self.ha.prometheus_text()
        # a change of role or of the last failover is published at once (status shows a takeover with its record),
        # the rest every health_interval
        shape = (tuple((t.peer_site, t.healthy) for t in self.health.tunnels), self.health.role,
                 self.health.last_failover)
        changed = shape != self._published_shape and now - self._last_publish >= MIN_PUBLISH_GAP
        if now < self._next_health and not changed:
            return
        try:
            with self._cloud_io():
                self.cloud.publish_health(self.health)
                self.ha.publish_failovers()
        except CloudUnavailable as exc:
            log.warning("cannot publish health: %s", exc, extra={"site": self.settings.site})
            return
        self._published_shape = shape
        self._last_publish = now
        self._next_health = now + self.settings.health_interval

    def step(self, now: float) -> None:
        # a restarted daemon reads the config file, which always holds the applied peers
        self.supervisor.ensure_running(now)
        if now >= self._next_poll:
            ok = self.poll_cloud()
            self._backoff = self.settings.poll_interval if ok else min(self._backoff * 2, self.settings.max_backoff)
            self._next_poll = now + self._backoff
        self.report_health(now)

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.start()
        try:
            self.metrics = MetricsServer(self.settings.metrics_address, self.settings.metrics_port)
            self.metrics.start()
        except OSError as exc:
            log.warning("metrics endpoint not served: %s", exc)
        try:
            while not self._stop.is_set():
                self.step(time.monotonic())
                self._stop.wait(1.0)
        except _Stopping:
            log.info("stop signal while waiting on AWS: that call is abandoned", extra={"site": self.settings.site})
        finally:
            log.info("stopping", extra={"site": self.settings.site})
            self.ha.stop()
            if self.metrics is not None:
                self.metrics.stop()
            self.supervisor.stop()
