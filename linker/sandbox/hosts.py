"""A sandbox host: an EC2 instance materialised as a network namespace with its own filesystem view.

``create`` gives it the instance's ENI (a veth to its VPC's router, the instance's private address, the subnet's
router as default gateway: the instance itself never knows its public address) and starts its init
(linker.sandbox.hostinit). ``boot`` then does what cloud-init does with the instance's user-data, inside the host
(linker.sandbox.cloudinit), after a short boot delay; the units it asks for are run by linker.sandbox.services, the
units they require (Requires=) first and, when ordered after them (After=), only once those are ready.
``destroy`` stops all of it and removes the namespace and the host's files.

Thread-safety: ``boot`` runs cloud-init on a thread of its own; everything else is called from the supervisor loop.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from linker.errors import SandboxError
from linker.sandbox import addressing, netns
from linker.sandbox.cloudview import Instance, Vpc
from linker.sandbox.layout import Layout, host_environment
from linker.sandbox.services import Service
from linker.sandbox.userdata import Unit, UserDataError, parse_unit

log = logging.getLogger("linker.sandbox")
BOOT_DELAY = 2.0  # seconds between the instance running and cloud-init (a real instance takes far longer)
BOOT_TIMEOUT = 600.0
INIT_TIMEOUT = 15.0
REQUESTS = "run/.sandbox/systemd.jsonl"  # where linker.sandbox.shims' systemctl asks (inside the host dir)
UNIT_STATES = "run/.sandbox/units"


class Host:
    def __init__(self, layout: Layout, instance: Instance, vpc: Vpc, access_key: str,
                 python: str = sys.executable) -> None:
        self.layout, self.instance, self.region, self.vpc_index = layout, instance, vpc.region, vpc.index
        self.python = python
        # the instance's and its interface's ids, which a real gateway's agent asks of its metadata service
        # (linker.gateway.identity; failover moves the site's routes to that interface)
        self.env = {**host_environment(access_key), "LINKER_INSTANCE_ID": instance.id, "LINKER_ENI_ID": instance.eni_id}
        self.netns = layout.names.host(instance.id)
        self.router = layout.names.router(vpc.index)
        self.device = addressing.Names.eni_device(instance.eni_id)
        self.dir = layout.host_dir(instance.id)
        self.init: subprocess.Popen[bytes] | None = None
        self.init_pid: int | None = None
        self.public_ip: str | None = None  # as EC2 says; the host itself never sees it (1:1 NAT at its router)
        self.boot_state = "none"
        self.boot_detail = ""
        self.services: dict[str, Service] = {}
        self._requests_read = 0
        self._boot_thread: threading.Thread | None = None
        self._boot_process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()

    # --- life cycle ---

    def create(self, subnet_cidr: str) -> None:
        """The namespace, the ENI and the init. Raises SandboxError; the caller destroys a half-made host."""
        i = self.instance
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.dir / "log").mkdir(exist_ok=True)
        netns.add(self.netns)
        prefix = subnet_cidr.split("/")[1]
        gateway = addressing.router_ip(subnet_cidr)
        dev = addressing.Names.HOST_DEVICE
        netns.ip("link", "add", dev, "netns", self.netns, "type", "veth", "peer", "name", self.device,
                 "netns", self.router)
        netns.sysctl(self.router, {f"net.ipv4.conf.{self.device}.proxy_arp": "1",
                                   f"net.ipv4.conf.{self.device}.rp_filter": "0"})
        netns.ip_batch([f"link set {self.device} up", f"route replace {i.private_ip}/32 dev {self.device}"],
                       self.router)
        netns.ip_batch([f"addr add {i.private_ip}/{prefix} dev {dev}", f"link set {dev} up",
                        f"route add default via {gateway} dev {dev}"], self.netns)
        self._start_init()

    def _start_init(self) -> None:
        ready = self.dir / "ready"
        ready.unlink(missing_ok=True)
        with (self.dir / "log" / "init.log").open("ab") as out:
            self.init = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, self.python, "-P", "-m", "linker.sandbox.hostinit",
                 str(self.dir), str(self.layout.shims_dir)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                cwd="/")
        deadline = time.monotonic() + INIT_TIMEOUT
        while not ready.exists():
            if self.init.poll() is not None or time.monotonic() > deadline:
                detail = (self.dir / "log" / "init.log").read_text(errors="replace").strip()[-400:]
                raise SandboxError(f"host {self.instance.id}: its init did not start: {detail or 'timed out'}")
            time.sleep(0.02)
        self.init_pid = self.init.pid  # `ip netns exec` execs the init: same process

    def enter(self) -> list[str]:
        """The command prefix that runs something inside this host."""
        if self.init_pid is None:
            raise SandboxError(f"host {self.instance.id} is not running")
        return ["nsenter", "-t", str(self.init_pid), "-m", "-n"]

    def unplug(self) -> None:
        """Take the host off its VPC now: its ENI (the veth, both ends) is deleted; ``destroy`` does the rest."""
        netns.ip("link", "del", addressing.Names.HOST_DEVICE, netns=self.netns, check=False)

    def destroy(self) -> None:
        """Stop every process of the host (by PID), remove its namespace and its files. Idempotent."""
        self._stopping.set()
        for service in self.services.values():
            service.stop()
        if self._boot_process is not None and self._boot_process.poll() is None:
            os.killpg(self._boot_process.pid, signal.SIGKILL)
            self._boot_process.wait(5)
        if self.init is not None and self.init.poll() is None:
            self.init.terminate()
            try:
                self.init.wait(5)
            except subprocess.TimeoutExpired:
                self.init.kill()
                self.init.wait(5)
        kill_namespace_processes(self.netns)
        netns.delete(self.netns)  # the ENI's veth goes with it, both ends
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- cloud-init ---

    def boot(self, user_data: bytes | None, delay: float = BOOT_DELAY) -> None:
        """Run cloud-init with ``user_data`` after ``delay``, on a thread; the result is in ``boot_state``."""
        if user_data is None:
            self.boot_state = "none"
            return
        self.boot_state = "waiting"
        self._boot_thread = threading.Thread(target=self._boot, args=(user_data, delay),
                                             name=f"boot-{self.instance.id}", daemon=True)
        self._boot_thread.start()

    def _boot(self, user_data: bytes, delay: float) -> None:
        if self._stopping.wait(delay):
            return
        self.boot_state = "running"
        out_path = self.dir / "log" / "cloud-init-output.log"
        try:
            with out_path.open("ab") as out:
                self._boot_process = subprocess.Popen(
                    [*self.enter(), "--wd=/", "--", self.python, "-P", "-m", "linker.sandbox.cloudinit",
                     self.instance.id],
                    stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                    start_new_session=True)
                self._boot_process.communicate(user_data, timeout=BOOT_TIMEOUT)
            code = self._boot_process.returncode
        except (OSError, subprocess.TimeoutExpired, SandboxError) as exc:
            code, self.boot_detail = -1, str(exc)
        if self._stopping.is_set():
            return
        tail = out_path.read_text(errors="replace").strip().splitlines()[-1:] if out_path.exists() else []
        self.boot_state = "done" if code == 0 else "failed"
        self.boot_detail = self.boot_detail or (tail[0] if tail else "")
        (log.info if code == 0 else log.error)("cloud-init %s: %s", self.boot_state, self.boot_detail,
                                               extra={"resource": self.instance.id})

    # --- systemd ---

    def tick(self, now: float) -> None:
        """Act on the host's systemctl requests, then keep its units running."""
        path = self.dir / REQUESTS
        try:
            with path.open("rb") as f:
                f.seek(self._requests_read)
                data = f.read()
        except FileNotFoundError:
            data = b""
        complete = data[:data.rfind(b"\n") + 1]
        self._requests_read += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            try:
                self._request(json.loads(line), now)
            except (ValueError, KeyError, UserDataError, SandboxError) as exc:
                log.error("systemctl request refused: %s", exc, extra={"resource": self.instance.id})
        for service in list(self.services.values()):
            service.tick(now)
        self._start_waiting(now)
        self._publish_states()

    def _request(self, req: dict[str, Any], now: float) -> None:
        op, name = req["op"], req["unit"]
        current = self.services.get(name)
        if op == "stop":
            if current is not None:
                current.stop()
            return
        if op == "start" and current is not None and current.pending:
            return  # already started (or waiting to be): systemctl start is a no-op
        if current is not None and current.pid is not None:
            current.stop()
        texts = {**req.get("requires", {}), name: req["text"]}  # the unit files of what it requires, too
        self._start_unit(parse_unit(name, req["text"]), texts, now, ())

    def _start_unit(self, unit: Unit, texts: dict[str, str], now: float, chain: tuple[str, ...]) -> None:
        """Start ``unit`` and, first, the units it requires that are not started; it waits for those it is
        ordered after (``_start_waiting``). Raises UserDataError for a dependency cycle or an unreadable unit."""
        for item in unit.unsupported:
            log.warning("%s: %s is not emulated in the sandbox", unit.name, item, extra={"resource": self.instance.id})
        missing = [d for d in unit.requires if d not in texts and d not in self.services]
        for dep in unit.requires:
            if dep in chain or dep == unit.name:
                raise UserDataError(f"{unit.name}: a dependency cycle through {dep}")
            have = self.services.get(dep)
            if dep in texts and (have is None or not (have.pending or have.ready)):
                self._start_unit(parse_unit(dep, texts[dep]), texts, now, (*chain, unit.name))
        current = self.services.get(unit.name)
        service = Service(unit, self.enter(), self.env, self.dir / "run",
                          self.dir / "log" / f"{unit.name}.log", self.instance.id)
        if current is not None:
            service.restarts = current.restarts
        self.services[unit.name] = service
        if missing:
            service.fail_dependency(f"{', '.join(missing)} (not installed)")
        elif all(self.services[d].ready for d in unit.waits_for()):
            service.start(now)
        else:
            service.state = "waiting"

    def _start_waiting(self, now: float) -> None:
        """Start the units whose ordered dependencies are ready; fail those whose dependency failed."""
        for service in list(self.services.values()):
            if service.state != "waiting":
                continue
            deps = [self.services.get(d) for d in service.unit.waits_for()]
            failed = next((d for d in deps if d is None or d.state == "failed"), False)
            if failed is not False:
                service.fail_dependency(failed.unit.name if failed is not None else "a unit it requires")
            elif all(d is not None and d.ready for d in deps):
                service.start(now)

    def _publish_states(self) -> None:
        states = self.dir / UNIT_STATES
        states.mkdir(parents=True, exist_ok=True)
        for name, service in self.services.items():
            path = states / name
            text = service.state + "\n"
            if not path.exists() or path.read_text() != text:
                path.write_text(text)

    def record(self) -> dict[str, Any]:
        i = self.instance
        return {"instance": i.id, "region": self.region, "role": i.role, "netns": self.netns,
                "private_ip": i.private_ip, "public_ip": self.public_ip, "init_pid": self.init_pid,
                "init_started": netns.start_time(self.init_pid) if self.init_pid else None,
                "dir": str(self.dir), "boot": self.boot_state, "boot_detail": self.boot_detail,
                "link": i.tag("linker:link"), "services": {n: s.record() for n, s in self.services.items()}}


def kill_namespace_processes(name: str, grace: float = 3.0) -> None:
    """End every process left in namespace ``name`` (one the sandbox made), by PID: SIGTERM, then SIGKILL."""
    me = os.getpid()
    pids = [p for p in netns.pids_in(name) if p != me]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            pids = [p for p in pids if netns.alive(p)]
            if not pids:
                return
            time.sleep(0.05)
