"""The gateway host's kernel settings the agent owns: IP forwarding and TCP MSS clamping on the tunnel."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger("linker.gateway")

NFT_TABLE = "linker_mss"


def enable_forwarding() -> None:
    """Route between the VPC and the tunnel (per network namespace, as on a real host)."""
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    v6 = Path("/proc/sys/net/ipv6/conf/all/forwarding")
    if v6.exists():
        v6.write_text("1\n")


def clamp_mss(interface: str) -> str:
    """Clamp the MSS of TCP SYNs crossing ``interface`` to the route's MTU, so path-MTU trouble cannot
    black-hole TCP through the tunnel. Uses nftables, else iptables; returns which one it used."""
    if shutil.which("nft"):
        ruleset = (
            f"table inet {NFT_TABLE} {{\n"
            "  chain forward {\n"
            "    type filter hook forward priority mangle; policy accept;\n"
            f'    oifname "{interface}" tcp flags syn / syn,rst tcp option maxseg size set rt mtu\n'
            f'    iifname "{interface}" tcp flags syn / syn,rst tcp option maxseg size set rt mtu\n'
            "  }\n"
            "}\n"
        )
        subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE], capture_output=True, check=False)
        subprocess.run(["nft", "-f", "-"], input=ruleset, text=True, check=True, capture_output=True)
        return "nftables"
    if shutil.which("iptables"):
        for direction in ("-o", "-i"):
            rule = ["FORWARD", direction, interface, "-p", "tcp", "--tcp-flags", "SYN,RST", "SYN",
                    "-j", "TCPMSS", "--clamp-mss-to-pmtu"]
            present = subprocess.run(["iptables", "-t", "mangle", "-C", *rule], capture_output=True).returncode == 0
            if not present:
                subprocess.run(["iptables", "-t", "mangle", "-A", *rule], check=True, capture_output=True)
        return "iptables"
    log.warning("neither nft nor iptables is installed: TCP MSS is not clamped", extra={"iface": interface})
    return "none"
