"""The sandbox supervisor (``linker sandbox serve``): the embedded AWS endpoint and the local cloud mirroring it.

One process, started in the background by ``linker up --sandbox`` and stopped by ``linker down --sandbox``. It serves
the AWS API (linker.sandbox.endpoint) and reconciles the network namespaces with what the API holds: after every
mutating EC2 call, and every few seconds, it reads the sandbox VPCs (linker.sandbox.cloudview) and makes the kernel
match: a router per VPC, a host per running instance (booted with its user-data), the routes, filters and NAT of
linker.sandbox.network. It also plays systemd for the hosts. On SIGTERM it removes everything it made and its
directory, then exits.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

import boto3
from botocore.config import Config

from linker import log as logsetup
from linker.errors import LinkerError, SandboxError
from linker.sandbox import addressing, cloudview, netns, network
from linker.sandbox.addressing import Names
from linker.sandbox.endpoint import AddressBook, Endpoint
from linker.sandbox.hosts import Host, kill_namespace_processes
from linker.sandbox.layout import Layout, write_shims

log = logging.getLogger("linker.sandbox")
FULL_RECONCILE_EVERY = 5.0
RETRY_AFTER = 10.0  # seconds before materialising an instance is tried again after a failure
TICK = 0.25
_BOTO = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30)


class Router:
    """A VPC's router namespace and what was last applied to it (only differences are applied)."""

    def __init__(self, names: Names, vpc: cloudview.Vpc) -> None:
        self.index, self.region, self.vpc_id, self.cidr = vpc.index, vpc.region, vpc.id, vpc.cidr
        self.netns = names.router(vpc.index)
        self.internet = names.internet
        self.tables: dict[str, int] = {}
        self.applied = network.RouterPlan((), (), (), "", ())

    def create(self) -> None:
        plan = addressing.vpc_plan(self.index)
        netns.add(self.netns)
        netns.sysctl(self.netns, {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0",
                                  "net.ipv4.conf.default.rp_filter": "0", "net.ipv4.conf.all.send_redirects": "0"})
        outside, inside = Names.uplink_internet_side(self.index), Names.UPLINK_ROUTER_SIDE
        netns.ip("link", "add", outside, "netns", self.internet, "type", "veth", "peer", "name", inside,
                 "netns", self.netns)
        netns.ip_batch([f"addr add {plan.uplink_internet}/30 dev {outside}", f"link set {outside} up"],
                       self.internet)
        netns.ip_batch([f"addr add {plan.uplink_router}/30 dev {inside}", f"link set {inside} up"], self.netns)

    def table_numbers(self, vpc: cloudview.Vpc) -> dict[str, int]:
        for table in vpc.tables:
            if table.id not in self.tables:
                self.tables[table.id] = 1000 + len(self.tables)
        return dict(self.tables)

    def apply(self, plan: network.RouterPlan) -> None:
        old = self.applied
        if plan == old:
            return
        if plan.addresses != old.addresses:
            netns.ip_batch([f"addr replace {a}/32 dev {network.VPC_DEVICE}" for a in plan.addresses], self.netns)
        if plan.rules != old.rules:  # replaced from what the kernel holds: a failed round leaves no stray rule
            ours = sorted({int(r["priority"]) for r in netns.ip_json("rule", "show", netns=self.netns)
                           if network.LOCAL_RULE_PREF <= int(r.get("priority", 0)) < 32766})
            netns.ip_batch([*(f"rule del pref {p}" for p in ours), *(f"rule add {r}" for r in plan.rules)],
                           self.netns)
        new_tables, old_tables = dict(plan.tables), dict(old.tables)
        for number in sorted(set(new_tables) | set(old_tables)):
            if new_tables.get(number) != old_tables.get(number):
                netns.ip_batch([f"route flush table {number}",
                                *(f"route add {r} table {number}" for r in new_tables.get(number, ()))], self.netns)
        if plan.nft != old.nft:
            netns.nft(self.netns, plan.nft)
        if set(old.nat) - set(plan.nat):  # a mapping went or changed: its tracked flows must not live on
            netns.in_netns(self.netns, flush_conntrack)
        self.applied = plan
        log.info("router applied", extra={"resource": self.netns, "count": len(plan.rules)})


def flush_conntrack() -> None:
    from pyroute2 import Conntrack

    ct = Conntrack()
    try:
        ct.flush()
    finally:
        ct.close()


class Supervisor:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.names = layout.names
        self.book = AddressBook()
        self.dirty = threading.Event()
        self.stop = threading.Event()
        self.regions: set[str] = set()
        self._regions_lock = threading.Lock()
        self.routers: dict[int, Router] = {}
        self.hosts: dict[str, Host] = {}
        self.namespaces: list[str] = []
        self.endpoint: Endpoint | None = None
        self.port = 0
        self.access_key = "LKSB" + secrets.token_hex(8).upper()  # the API's only credential (endpoint.py)
        self.failed: dict[str, str] = {}  # instance -> why it could not be materialised (retried)
        self._failed_at: dict[str, float] = {}
        self._retiring: dict[str, threading.Thread] = {}  # instance -> the thread removing its host
        self._clients: dict[str, Any] = {}
        self._written = ""
        self._internet_routes: tuple[str, ...] = ()

    # --- callbacks from the endpoint's threads ---

    def on_change(self, region: str, action: str) -> None:
        self.dirty.set()

    def on_region(self, region: str) -> None:
        with self._regions_lock:
            self.regions.add(region)

    # --- records ---

    def _record_namespace(self, name: str) -> None:
        self.namespaces.append(name)
        self.write_state()

    def write_state(self, ready: bool = True) -> None:
        doc = {
            "pid": os.getpid(), "started": netns.start_time(os.getpid()), "prefix": self.names.prefix,
            "endpoint": f"http://127.0.0.1:{self.port}", "access_key": self.access_key, "python": sys.executable,
            "ready": ready,
            "internet": self.names.internet, "namespaces": list(self.namespaces),
            "routers": {str(r.index): {"netns": r.netns, "region": r.region, "vpc": r.vpc_id, "cidr": r.cidr}
                        for r in self.routers.values()},
            "hosts": {i: h.record() for i, h in sorted(self.hosts.items())},
            "failed": dict(self.failed),
        }
        text = json.dumps(doc, sort_keys=True)
        if text != self._written:
            self.layout.write_state(doc)
            self._written = text

    # --- start and stop ---

    def start(self) -> None:
        root = self.layout.root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        root.chmod(0o700)
        self.layout.hosts_dir.mkdir(mode=0o700, exist_ok=True)
        write_shims(self.layout, sys.executable)
        self.endpoint = Endpoint(self.book, self.access_key, self.on_change, self.on_region)
        self.port = self.endpoint.start_local()
        self.write_state(ready=False)
        internet = self.names.internet
        self._record_namespace(internet)
        netns.add(internet)
        netns.sysctl(internet, {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.send_redirects": "0"})
        netns.ip("addr", "add", f"{addressing.API_ADDRESS}/32", "dev", Names.API_DEVICE, netns=internet)
        netns.nft(internet, network.internet_ruleset())
        self.endpoint.start_inside(internet, addressing.API_ADDRESS, addressing.API_PORT)
        self.write_state(ready=True)
        log.info("sandbox ready", extra={"resource": f"127.0.0.1:{self.port}"})

    def shutdown(self) -> None:
        """Remove every host, router and the internet (processes by PID, then namespaces), then the directory."""
        for thread in list(self._retiring.values()):
            thread.join()
        for host in list(self.hosts.values()):
            self._destroy_host(host)
        if self.endpoint is not None:
            self.endpoint.stop()
        for name in reversed(self.namespaces):
            kill_namespace_processes(name)
            netns.delete(name)
        shutil.rmtree(self.layout.root, ignore_errors=True)

    # --- the loop ---

    def client(self, region: str) -> Any:
        if region not in self._clients:
            self._clients[region] = boto3.session.Session(
                aws_access_key_id=self.access_key, aws_secret_access_key="sandbox").client(  # noqa: S106
                "ec2", region_name=region, endpoint_url=f"http://127.0.0.1:{self.port}", config=_BOTO)
        return self._clients[region]

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        try:
            self.start()
            next_full = 0.0
            while not self.stop.is_set():
                now = time.monotonic()
                try:
                    if self.dirty.is_set() or now >= next_full:
                        self.dirty.clear()
                        next_full = now + FULL_RECONCILE_EVERY
                        self.reconcile()
                    for host in list(self.hosts.values()):
                        host.tick(time.monotonic())
                    self.write_state()
                except LinkerError as exc:
                    log.error("reconcile failed, will retry: %s", exc.message)
                except Exception:
                    # a bug: logged in full, but the hosts keep running; a sandbox torn down by it helps nobody
                    log.exception("supervisor loop failed, will retry")
                    self.stop.wait(1.0)
                self.dirty.wait(TICK)
        except LinkerError as exc:
            log.error("the sandbox failed: %s", exc.message)
            return 1
        finally:
            self.shutdown()
        return 0

    def reconcile(self) -> None:
        with self._regions_lock:
            regions = sorted(self.regions)
        vpcs: list[cloudview.Vpc] = []
        for region in regions:
            try:
                vpcs += cloudview.read_region(self.client(region), region)
            except Exception as exc:
                raise SandboxError(f"cannot read {region} from the sandbox's API: {exc}") from None
        self.book.observe(i.private_ip for v in vpcs for i in v.instances)
        self.book.observe(ip for v in vpcs for _, ip in v.public_ips)
        for vpc in vpcs:
            if vpc.index not in self.routers:
                router = Router(self.names, vpc)
                self._record_namespace(router.netns)
                router.create()
                self.routers[vpc.index] = router
        wanted = {i.id: (vpc, i) for vpc in vpcs for i in vpc.live()}
        for instance_id in [i for i in self.hosts if i not in wanted]:
            self._retire_host(self.hosts.pop(instance_id))
        self._retiring = {i: t for i, t in self._retiring.items() if t.is_alive()}
        for instance_id, (vpc, instance) in wanted.items():
            retry = time.monotonic() - self._failed_at.get(instance_id, -RETRY_AFTER) >= RETRY_AFTER
            if instance_id not in self.hosts and retry and instance_id not in self._retiring:
                self._create_host(vpc, instance)
            if instance_id in self.hosts:
                host = self.hosts[instance_id]
                host.instance = instance  # source/dest check, groups, ... may have changed
                host.public_ip = vpc.public_ip(instance.private_ip)
        for vpc in vpcs:
            router = self.routers[vpc.index]
            here = [i for i, h in self.hosts.items() if h.vpc_index == vpc.index]
            router.apply(network.plan_router(vpc, router.table_numbers(vpc), here))
        self._apply_internet(vpcs)

    def _create_host(self, vpc: cloudview.Vpc, instance: cloudview.Instance) -> None:
        subnet = dict(vpc.subnets).get(instance.subnet_id)
        if subnet is None:
            self.failed[instance.id] = f"its subnet {instance.subnet_id} is not in {vpc.id}"
            self._failed_at[instance.id] = time.monotonic()
            return
        host = Host(self.layout, instance, vpc, self.access_key)
        self._record_namespace(host.netns)
        self.hosts[instance.id] = host
        try:
            host.create(subnet)
            host.boot(cloudview.user_data(self.client(vpc.region), instance.id))
        except (LinkerError, OSError) as exc:
            message = exc.message if isinstance(exc, LinkerError) else str(exc)
            log.error("cannot materialise the instance (will retry): %s", message, extra={"resource": instance.id})
            self.failed[instance.id], self._failed_at[instance.id] = message, time.monotonic()
            self._destroy_host(self.hosts.pop(instance.id))
            return
        self.failed.pop(instance.id, None)
        self._failed_at.pop(instance.id, None)
        log.info("instance materialised", extra={"resource": instance.id, "region": vpc.region})

    def _retire_host(self, host: Host) -> None:
        """A stopped or terminated instance: off the network at once (as when EC2 stops it, its peers see it go
        within the reconcile that read it), then its processes and namespace are removed on a thread of their own,
        which takes seconds (each process is given time to exit) that the route tables' changes must not wait for.
        The instance is materialised again (started again) only once that thread is done."""
        host.unplug()
        thread = threading.Thread(target=self._destroy_host, args=(host,), name=f"retire-{host.instance.id}",
                                  daemon=True)
        self._retiring[host.instance.id] = thread
        thread.start()

    def _destroy_host(self, host: Host) -> None:
        host.destroy()
        if host.netns in self.namespaces:
            self.namespaces.remove(host.netns)
        self.book.forget([host.instance.private_ip])
        log.info("instance removed", extra={"resource": host.instance.id})

    def _apply_internet(self, vpcs: Iterable[cloudview.Vpc]) -> None:
        routes = network.internet_routes(vpcs, self.hosts)
        if routes != self._internet_routes:  # compared with what the kernel holds: public /32s are all ours
            wanted = {r.split()[0] for r in routes}
            present = [ipaddress.ip_network(r["dst"]) for r in netns.ip_json("route", "show", netns=self.names.internet)
                       if r.get("dst", "default") != "default"]
            stale = [str(n) for n in present if n.subnet_of(addressing.PUBLIC) and str(n) not in wanted]
            netns.ip_batch([*(f"route del {d}" for d in stale), *(f"route replace {r}" for r in routes)],
                           self.names.internet)
            self._internet_routes = routes


def serve(layout: Layout) -> int:
    logsetup.setup("INFO")
    if os.geteuid() != 0:
        print("the sandbox supervisor needs root", file=sys.stderr)
        return 2
    return Supervisor(layout).run()
