"""The proof that a sandbox link carries traffic: from one workload host to the others, a ping and a checksummed
TCP transfer (``linker.sandbox.probe`` on both ends)."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

from linker.errors import SandboxError
from linker.sandbox.layout import host_environment
from linker.sandbox.lifecycle import Sandbox

PROBE_PORT = 5201
PROBE_TIMEOUT = 20


def prove(sandbox: Sandbox, regions: tuple[str, ...], size: int = 16 << 20) -> list[dict[str, Any]]:
    """From the first region's workload host: a ping and a checksummed TCP transfer to each other one."""
    source = sandbox.workload(regions[0])
    results = []
    for region in regions[1:]:
        dest = sandbox.workload(region)
        address = dest["private_ip"]
        ping = parse_ping(sandbox.run_on(source, ["ping", "-c", "5", "-i", "0.2", "-W", "2", "-q", address],
                                      timeout=30).stdout)
        transfer = _transfer(sandbox, source, dest, size)
        results.append({"from": regions[0], "from_address": source["private_ip"], "to": region,
                        "address": address, "ping": ping, "transfer": transfer})
    return results

def _transfer(sandbox: Sandbox, source: dict[str, Any], dest: dict[str, Any], size: int) -> dict[str, Any]:
    python = str(sandbox.state["python"])
    receiver = subprocess.Popen(
        [*sandbox.enter(dest), python, "-P", "-m", "linker.sandbox.probe", "recv", "--port", str(PROBE_PORT),
         "--timeout", str(PROBE_TIMEOUT)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=host_environment(sandbox.access_key))
    try:
        first = receiver.stdout.readline() if receiver.stdout else ""
        if first.strip() != "listening":
            raise SandboxError(f"the transfer's receiver did not start: {first.strip() or receiver.stderr}")
        sent = sandbox.run_on(source, [python, "-P", "-m", "linker.sandbox.probe", "send", "--to",
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



def parse_ping(text: str) -> dict[str, Any]:
    sent = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", text)
    rtt = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", text)
    return {"sent": int(sent.group(1)) if sent else 0, "received": int(sent.group(2)) if sent else 0,
            "rtt_ms": {"min": float(rtt.group(1)), "avg": float(rtt.group(2)), "max": float(rtt.group(3))}
            if rtt else None}
