"""The CLI's side of ``--sandbox``: start (or find) the supervisor, lay out the sandbox VPCs, point the controller at
the embedded endpoint, and after ``up`` prove the link from workload host to workload host.

The controller itself runs unchanged: ``Sandbox.target`` is an ordinary ``Target`` with the sandbox's endpoint,
and the process's AWS credentials are replaced by the sandbox's own access key (the only one its API accepts), so
no real credential is ever sent anywhere.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from linker.control.aws import Target
from linker.control.facts import ami_parameter
from linker.errors import DegradedError, PrivilegeError, SandboxError, UserError
from linker.gateway import wgctl
from linker.sandbox import addressing, netns
from linker.sandbox.cloudview import TAG_INDEX, TAG_ROLE
from linker.sandbox.hosts import kill_namespace_processes
from linker.sandbox.layout import Layout, current, host_environment

TOOLS = ("ip", "nft", "nsenter", "mount", "ping", "sysctl", "install")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 90.0
HANDSHAKE_AGE = 180.0  # REJECT_AFTER_TIME: an older handshake means no session
START_HINT = "start one with: sudo .venv/bin/linker up us-east-1 eu-west-1 --sandbox --yes"
PROBE_PORT = 5201
PROBE_TIMEOUT = 20
_BOTO = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)


def require_root() -> None:
    if os.geteuid() != 0:
        command = shlex.join([sys.argv[0], *sys.argv[1:]]) if sys.argv and sys.argv[0] else "linker ..."
        raise PrivilegeError("the sandbox builds network namespaces, which needs root",
                             fix=f"run it with sudo: sudo {command}")


def check_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise UserError(f"the sandbox needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                        "not installed", fix="run: sudo bash scripts/setup")
    try:
        import moto.moto_server.werkzeug_app  # noqa: F401
    except ImportError:
        raise UserError("the sandbox needs moto's server (the embedded AWS endpoint), which is not installed",
                        fix="run: sudo bash scripts/setup (or pip install 'linker[sandbox]')") from None


def refuse_targets(endpoint_url: str | None, profile: str | None) -> None:
    if endpoint_url:
        raise UserError("--sandbox runs its own AWS endpoint, so --endpoint-url (or LINKER_ENDPOINT_URL) cannot "
                        "be used with it", fix="drop --endpoint-url, or unset LINKER_ENDPOINT_URL")
    if profile:
        raise UserError("--sandbox uses no AWS account, so --profile cannot be used with it", fix="drop --profile")


def use_sandbox_credentials(access_key: str = "none-yet") -> None:
    """This process talks to the sandbox only: its access key, no profile, no real credential, no metadata service."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                "LINKER_ENDPOINT_URL"):
        os.environ.pop(var, None)
    os.environ.update({"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": "sandbox",
                       "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                       "AWS_SHARED_CREDENTIALS_FILE": os.devnull})


def _alive(state: dict[str, Any] | None) -> bool:
    return bool(state) and netns.alive(int(state["pid"]), state.get("started"))  # type: ignore[index]


class Sandbox:
    """A running sandbox, as its records show it. Methods that wait are bounded by their timeouts."""

    def __init__(self, layout: Layout, state: dict[str, Any]) -> None:
        self.layout, self.state = layout, state
        self.access_key = str(state["access_key"])
        self._session = boto3.session.Session(aws_access_key_id=self.access_key,
                                              aws_secret_access_key="sandbox")  # noqa: S106 (moto checks none)
        use_sandbox_credentials(self.access_key)  # the controller's own clients take them from the environment

    # --- finding and starting ---

    @classmethod
    def existing(cls, layout: Layout | None = None) -> Sandbox | None:
        layout = layout or current()
        state = layout.read_state()
        return cls(layout, state) if _alive(state) and state and state.get("ready") else None

    @classmethod
    def start(cls, layout: Layout | None = None) -> Sandbox:
        """The running sandbox, or a new one (after removing what a dead one left)."""
        layout = layout or current()
        layout.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with (layout.root / "lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = cls.existing(layout)
            if found is not None:
                return found
            state = layout.read_state(any_version=True)  # a dead sandbox, or one of another linker version
            if state is not None:
                remove_leftovers(layout, state)
                layout.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            layout.root.chmod(0o700)
            with layout.log_path.open("ab") as out:
                proc = subprocess.Popen([sys.executable, "-m", "linker", "sandbox", "serve"],
                                        env={**os.environ, "LINKER_SANDBOX_DIR": str(layout.root)},
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True, cwd="/")
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                state = layout.read_state()
                if state and state.get("ready") and state.get("pid") == proc.pid:
                    return cls(layout, state)
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
            tail = _tail(layout.log_path)
            if proc.poll() is None:
                proc.terminate()
            raise SandboxError(f"the sandbox did not start: {tail or 'no output'}",
                               fix=f"the supervisor's log is {layout.log_path}")

    def refresh(self) -> dict[str, Any]:
        state = self.layout.read_state()
        if not _alive(state) or state is None:
            raise SandboxError("the sandbox's supervisor is gone",
                               fix="remove what is left with `linker down --sandbox`, then run `up` again")
        self.state = state
        return state

    @property
    def endpoint(self) -> str:
        return str(self.state["endpoint"])

    @property
    def target(self) -> Target:
        return Target(None, self.endpoint)

    def client(self, service: str, region: str) -> Any:
        return self._session.client(service, region_name=region, endpoint_url=self.endpoint, config=_BOTO)

    def regions(self) -> list[str]:
        return [r["region"] for _, r in sorted(self.refresh()["routers"].items(), key=lambda kv: int(kv[0]))]

    def links(self) -> list[str]:
        """Names of the links that have parameters in the sandbox."""
        names: set[str] = set()
        for region in self.regions():
            pages = self.client("ssm", region).get_paginator("get_parameters_by_path").paginate(
                Path="/linker", Recursive=True)
            names |= {p["Name"].split("/")[2] for page in pages for p in page["Parameters"]}
        return sorted(names)

    # --- the sandbox's VPCs ---

    def ensure_vpcs(self, regions: tuple[str, ...]) -> dict[str, int]:
        """A sandbox VPC (public and private subnet, internet gateway, workload host) in each region."""
        known = {r["region"]: int(i) for i, r in self.refresh()["routers"].items()}
        found: dict[str, str] = {}
        for region in regions:
            vpcs = self.client("ec2", region).describe_vpcs(
                Filters=[{"Name": "tag-key", "Values": [TAG_INDEX]}])["Vpcs"]
            for v in vpcs:
                tags = {t["Key"]: t["Value"] for t in v.get("Tags", [])}
                known[region], found[region] = int(tags[TAG_INDEX]), v["VpcId"]
        indexes = addressing.assign_indexes(known, regions)
        for region in regions:
            try:
                self._ensure_vpc(region, addressing.vpc_plan(indexes[region]), found.get(region))
            except (BotoCoreError, ClientError) as exc:
                raise SandboxError(f"cannot lay out the sandbox VPC in {region}: {exc}",
                                   fix=f"see the supervisor's log, {self.layout.log_path}") from None
        return {r: indexes[r] for r in regions}

    def _ensure_vpc(self, region: str, plan: addressing.VpcPlan, vpc: str | None) -> None:
        ec2 = self.client("ec2", region)

        def tags(kind: str, name: str, role: str, extra: dict[str, str] | None = None) -> list[dict[str, Any]]:
            items = {"Name": name, TAG_ROLE: role, **(extra or {})}
            return [{"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in items.items()]}]

        if vpc is None:
            vpc = ec2.create_vpc(CidrBlock=plan.cidr, TagSpecifications=tags(
                "vpc", f"sandbox-{region}", "vpc", {TAG_INDEX: str(plan.index), "linker:site": region}))["Vpc"]["VpcId"]
        in_vpc = [{"Name": "vpc-id", "Values": [vpc]}]
        subnets = {s["CidrBlock"]: s["SubnetId"] for s in ec2.describe_subnets(Filters=in_vpc)["Subnets"]}
        for cidr, name in ((plan.public_subnet, "public"), (plan.private_subnet, "private")):
            if cidr not in subnets:
                subnets[cidr] = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, TagSpecifications=tags(
                    "subnet", f"sandbox-{region}-{name}", name))["Subnet"]["SubnetId"]
        igws = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc]}])
        if igws["InternetGateways"]:
            igw = igws["InternetGateways"][0]["InternetGatewayId"]
        else:
            igw = ec2.create_internet_gateway(TagSpecifications=tags(
                "internet-gateway", f"sandbox-{region}", "internet-gateway"))["InternetGateway"]["InternetGatewayId"]
            ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        tables = ec2.describe_route_tables(Filters=[*in_vpc, {"Name": f"tag:{TAG_ROLE}", "Values": ["public"]}])
        if not tables["RouteTables"]:
            table = ec2.create_route_table(VpcId=vpc, TagSpecifications=tags(
                "route-table", f"sandbox-{region}-public", "public"))["RouteTable"]["RouteTableId"]
            ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
            ec2.associate_route_table(RouteTableId=table, SubnetId=subnets[plan.public_subnet])
        groups = ec2.describe_security_groups(Filters=[*in_vpc, {"Name": "group-name",
                                                                  "Values": ["sandbox-workload"]}])["SecurityGroups"]
        if groups:
            group = groups[0]["GroupId"]
        else:
            group = ec2.create_security_group(GroupName="sandbox-workload", VpcId=vpc,
                                              Description="the sandbox's workload host: anything from 10.0.0.0/8",
                                              TagSpecifications=tags("security-group", "sandbox-workload",
                                                                     "workload"))["GroupId"]
            ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
                {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
        workloads = ec2.describe_instances(Filters=[*in_vpc, {"Name": f"tag:{TAG_ROLE}", "Values": ["workload"]},
                                                    {"Name": "instance-state-name", "Values": ["pending", "running"]}])
        if not any(r["Instances"] for r in workloads["Reservations"]):
            ami = self.client("ssm", region).get_parameter(Name=ami_parameter("x86_64"))["Parameter"]["Value"]
            ec2.run_instances(ImageId=ami, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                              SubnetId=subnets[plan.private_subnet], PrivateIpAddress=plan.workload_ip,
                              SecurityGroupIds=[group], TagSpecifications=tags("instance", "workload", "workload"))

    def wait_materialised(self, regions: tuple[str, ...], timeout: float = START_TIMEOUT) -> None:
        """Until every region's router and workload host exist."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.refresh()
            routed = {r["region"] for r in state["routers"].values()}
            workloads = {h["region"] for h in state["hosts"].values() if h["role"] == "workload"}
            missing = [r for r in regions if r not in routed or r not in workloads]
            if not missing:
                return
            if time.monotonic() > deadline:
                why = "; ".join(f"{i}: {m}" for i, m in state.get("failed", {}).items()) or "timed out"
                raise SandboxError(f"the sandbox could not build {', '.join(missing)}: {why}",
                                   fix=f"see the supervisor's log, {self.layout.log_path}")
            time.sleep(0.2)

    # --- hosts ---

    def hosts(self, region: str | None = None, role: str | None = None,
              link: str | None = None) -> list[dict[str, Any]]:
        return [h for h in self.refresh()["hosts"].values()
                if (region is None or h["region"] == region) and (role is None or h["role"] == role)
                and (link is None or h.get("link") == link)]

    def workload(self, region: str) -> dict[str, Any]:
        found = self.hosts(region, "workload")
        if not found:
            known = ", ".join(self.regions()) or "none"
            raise UserError(f"the sandbox has no workload host in {region} (its regions: {known})",
                            fix="use one of its regions, or add this one with `linker up ... --sandbox`")
        return found[0]

    def enter(self, host: dict[str, Any]) -> list[str]:
        """The command prefix that runs something on ``host`` (its namespaces and its environment)."""
        if not host.get("init_pid") or not netns.alive(int(host["init_pid"]), host.get("init_started")):
            raise SandboxError(f"host {host['instance']} is not running")
        return ["nsenter", "-t", str(host["init_pid"]), "-m", "-n", "--wd=/", "--"]

    def run_on(self, host: dict[str, Any], argv: list[str], timeout: float = 120.0) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([*self.enter(host), *argv], capture_output=True, text=True, timeout=timeout,
                                  env=host_environment(self.access_key))
        except subprocess.TimeoutExpired:
            raise SandboxError(f"`{' '.join(argv)}` on {host['instance']} did not finish within {timeout:.0f} s") \
                from None

    # --- the link, seen from the hosts ---

    def tunnels(self, link: str, regions: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """Each gateway's view of its tunnels, from its daemon (UAPI): peers and their handshake ages."""
        now = time.time()
        out: dict[str, dict[str, Any]] = {}
        for region in regions:
            current = self.gateway_instances(link, region)  # not one being replaced or removed
            for host in (h for h in self.hosts(region, link=link) if h["instance"] in current):
                entry: dict[str, Any] = {"instance": host["instance"], "peers": 0, "handshaken": 0,
                                         "boot": host.get("boot")}
                state = uapi_state(Path(host["dir"], "run", "wireguard"))
                if state is not None:
                    entry["peers"] = len(state.peers)
                    entry["handshaken"] = sum(1 for p in state.peers.values()
                                              if p.last_handshake and now - p.last_handshake < HANDSHAKE_AGE)
                out.setdefault(region, entry)
        return out

    def gateway_instances(self, link: str, region: str) -> set[str]:
        """The link's running gateway instances in ``region``, as EC2 says."""
        reply = self.client("ec2", region).describe_instances(Filters=[
            {"Name": "tag:linker:link", "Values": [link]}, {"Name": "tag:linker:site", "Values": [region]},
            {"Name": "instance-state-name", "Values": ["running"]}])
        return {i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]}

    def wait_handshakes(self, link: str, regions: tuple[str, ...], timeout: float) -> dict[str, dict[str, Any]]:
        """Until every gateway has exactly one peer per other region, each with a recent handshake."""
        want = len(regions) - 1
        deadline = time.monotonic() + timeout
        while True:
            seen = self.tunnels(link, regions)
            if all(seen.get(r, {}).get("peers") == want and seen[r]["handshaken"] == want for r in regions):
                return seen
            if time.monotonic() > deadline:
                late = [f"{r} ({seen[r]['handshaken']}/{want} peers up, boot {seen[r]['boot']})" if r in seen
                        else f"{r} (no gateway host)" for r in regions
                        if seen.get(r, {}).get("handshaken") != want or seen.get(r, {}).get("peers") != want]
                raise DegradedError(f"link {link!r} in the sandbox: no handshake after {timeout:.0f} s from "
                                    f"{', '.join(late)}",
                                    fix=f"see `sudo linker sandbox hosts` and the hosts' logs in "
                                        f"{self.layout.hosts_dir}/<instance>/log/")
            time.sleep(0.5)

    def prove(self, regions: tuple[str, ...], size: int = 16 << 20) -> list[dict[str, Any]]:
        """From the first region's workload host: a ping and a checksummed TCP transfer to each other one."""
        source = self.workload(regions[0])
        results = []
        for region in regions[1:]:
            dest = self.workload(region)
            address = dest["private_ip"]
            ping = parse_ping(self.run_on(source, ["ping", "-c", "5", "-i", "0.2", "-W", "2", "-q", address],
                                          timeout=30).stdout)
            transfer = self._transfer(source, dest, size)
            results.append({"from": regions[0], "from_address": source["private_ip"], "to": region,
                            "address": address, "ping": ping, "transfer": transfer})
        return results

    def _transfer(self, source: dict[str, Any], dest: dict[str, Any], size: int) -> dict[str, Any]:
        python = str(self.state["python"])
        receiver = subprocess.Popen(
            [*self.enter(dest), python, "-P", "-m", "linker.sandbox.probe", "recv", "--port", str(PROBE_PORT),
             "--timeout", str(PROBE_TIMEOUT)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=host_environment(self.access_key))
        try:
            first = receiver.stdout.readline() if receiver.stdout else ""
            if first.strip() != "listening":
                raise SandboxError(f"the transfer's receiver did not start: {first.strip() or receiver.stderr}")
            sent = self.run_on(source, [python, "-P", "-m", "linker.sandbox.probe", "send", "--to",
                                        dest["private_ip"], "--port", str(PROBE_PORT), "--bytes", str(size),
                                        "--timeout", str(PROBE_TIMEOUT)], timeout=PROBE_TIMEOUT + 30)
            out, _ = receiver.communicate(timeout=30)
        finally:
            if receiver.poll() is None:
                receiver.kill()
                receiver.wait(5)
        try:
            sender, got = json.loads(sent.stdout.strip().splitlines()[-1]), json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise SandboxError(f"the transfer failed: {sent.stdout.strip() or sent.stderr.strip()}") from None
        return {**sender, "verified": bool(sender.get("verified")) and got.get("sha256") == sender.get("sha256"),
                "received_sha256": got.get("sha256")}

    # --- stopping ---

    def stop(self, timeout: float = STOP_TIMEOUT) -> list[str]:
        """Stop the supervisor (it removes what it made); whatever is left after ``timeout`` is removed from its
        records. Returns the namespaces that were in the records."""
        state = self.layout.read_state(any_version=True) or self.state
        pid = int(state["pid"])
        if netns.alive(pid, state.get("started")):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while netns.alive(pid, state.get("started")) and time.monotonic() < deadline:
                time.sleep(0.1)
        remove_leftovers(self.layout, state)
        return list(state.get("namespaces", []))


def uapi_state(directory: Path) -> wgctl.DeviceState | None:
    """The state of the daemon whose UAPI socket is in ``directory`` (a host's /run/wireguard), None if none answers.

    The socket is reached through /proc/self/fd: its full path in a sandbox directory can exceed the 107 bytes a
    unix socket address holds."""
    try:
        fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        sockets = sorted(p.name for p in directory.glob("*.sock"))
        return wgctl.get(Path(f"/proc/self/fd/{fd}", sockets[0])) if sockets else None
    except wgctl.UapiError:
        return None
    finally:
        os.close(fd)


def remove_leftovers(layout: Layout, state: dict[str, Any] | None) -> None:
    """What a sandbox's records name and still exists: its supervisor (by PID), namespaces, directory."""
    if state:
        pid = int(state.get("pid", 0))
        if pid and netns.alive(pid, state.get("started")):
            os.kill(pid, signal.SIGKILL)
        names = [*state.get("namespaces", []), *(h["netns"] for h in state.get("hosts", {}).values())]
        for name in reversed(list(dict.fromkeys(names))):
            if layout.names.owns(name) and netns.exists(name):
                kill_namespace_processes(name)
                netns.delete(name)
    shutil.rmtree(layout.root, ignore_errors=True)


def leftovers(layout: Layout, namespaces: list[str]) -> list[str]:
    """What of a removed sandbox still exists (for checks): namespaces and its directory."""
    left = [n for n in namespaces if netns.exists(n)]
    left += [n for n in netns.list_netns() if layout.names.owns(n) and n not in left]
    if layout.root.exists():
        left.append(str(layout.root))
    return left


def parse_ping(text: str) -> dict[str, Any]:
    sent = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", text)
    rtt = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", text)
    return {"sent": int(sent.group(1)) if sent else 0, "received": int(sent.group(2)) if sent else 0,
            "rtt_ms": {"min": float(rtt.group(1)), "avg": float(rtt.group(2)), "max": float(rtt.group(3))}
            if rtt else None}


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""
