"""Writes the seed corpus (tests/fuzz/corpus/TARGET/*): real messages off a pair's wire, real UAPI requests and
config files. Run it again when a format changes: ``python -m tests.fuzz.seed``. Deterministic (seeded keys)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.fuzz.run import CORPUS
from tests.pair.harness import Pair, ipv4_packet

KEY_A = "c" * 64
KEY_B = "d" * 64


def wire() -> list[bytes]:
    p = Pair(seed=11)
    p.send("a", b"one")
    p.send("b", b"two" * 100)
    p.advance(12)
    return [data for _, _, data, _ in p.wire.log]


def uapi() -> list[bytes]:
    return [b"get=1\n\n",
            f"set=1\nprivate_key={KEY_A}\nlisten_port=51820\nfwmark=0\nreplace_peers=true\n"
            f"public_key={KEY_B}\nendpoint=192.0.2.2:51820\nreplace_allowed_ips=true\n"
            "allowed_ip=10.2.0.0/16\nallowed_ip=2001:db8::/64\npersistent_keepalive_interval=25\n\n".encode(),
            f"set=1\npublic_key={KEY_B}\nremove=true\n\n".encode(),
            f"set=1\npublic_key={KEY_B}\nupdate_only=true\nendpoint=[2001:db8::1]:51820\n\n".encode()]


def configs() -> list[bytes]:
    return [b"[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nListenPort = 51820\n"
            b"Address = 10.1.0.1/24, fd00::1/64\nMTU = 1420\nFwMark = 0x10\nTable = off\n\n[Peer]\n"
            b"PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nPresharedKey = "
            b"FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=\nEndpoint = [2001:db8::2]:51820\n"
            b"AllowedIPs = 10.2.0.0/16, 0.0.0.0/0\nPersistentKeepalive = 25\n"]


def tcp_run() -> list[bytes]:
    import struct
    out = []
    for seq in range(3):
        payload = bytes([seq]) * 1000
        tcp = struct.pack("!HHIIBBHHH", 1000, 2000, 1 + seq * 1000, 7, 0x50, 0x10, 512, 0, 0) + payload
        out.append(ipv4_packet("10.1.0.1", "10.2.0.1", tcp, proto=6))
    return [b"\0\0\0\0" + b"".join(out)]


def main() -> None:
    seeds = {"datagram": wire(), "datagram_fixed": wire(), "uapi": uapi(), "config": configs(), "coalesce": tcp_run()}
    for target, items in seeds.items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for data in items:
            (folder / hashlib.sha256(data).hexdigest()[:16]).write_bytes(data)
        print(f"{target}: {len(items)} seeds in {folder.relative_to(Path.cwd())}")


if __name__ == "__main__":
    main()
