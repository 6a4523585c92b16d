"""The agent's settings file (/etc/linker/agent.json), written by the gateway's user-data. Nothing secret."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from linker.errors import ConfigError
from linker.naming import DEFAULT_MTU, DEFAULT_PORT, INTERFACE

DEFAULT_PATH = Path("/etc/linker/agent.json")


@dataclass(frozen=True)
class AgentSettings:
    link: str
    site: str
    region: str
    interface: str = INTERFACE
    listen_port: int = DEFAULT_PORT
    mtu: int = DEFAULT_MTU
    state_dir: str = "/var/lib/linker"
    run_dir: str = "/run/linker"
    metrics_address: str = "127.0.0.1"  # never the public interface
    metrics_port: int = 9586
    poll_interval: float = 10.0
    max_backoff: float = 300.0
    health_interval: float = 30.0
    clamp_mss: bool = True
    daemon_command: list[str] = field(default_factory=list)  # empty: this Python's `linker daemon`
    # the daemon opens its device and sockets as root, then runs as this user with CAP_NET_ADMIN only (it parses
    # the internet's datagrams); "" keeps it root (a host without the user, a troubleshooting session)
    daemon_user: str = "nobody"
    # failover's datagrams (docs/HA.md): the same on every gateway of a link, and not the tunnel's port
    agent_port: int = DEFAULT_PORT + 1
    instance_id: str = ""  # empty: asked of the instance metadata service (linker.gateway.identity)
    eni_id: str = ""  # the primary network interface's id; empty: likewise

    @property
    def key_path(self) -> Path:
        return Path(self.state_dir) / "private.key"

    @property
    def last_good_path(self) -> Path:
        return Path(self.state_dir) / "last-good.json"

    @property
    def daemon_config_path(self) -> Path:
        return Path(self.run_dir) / f"{self.interface}.conf"

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH) -> AgentSettings:
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError("no such file", path=str(path),
                              fix="the gateway's user-data writes it; pass --config PATH to use another") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON: {exc.msg}", path=str(path), line=exc.lineno) from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}", path=str(path))
        missing = [k for k in ("link", "site", "region") if k not in doc]
        if missing:
            raise ConfigError(f"missing setting(s) {', '.join(missing)}", path=str(path))
        return cls(**doc)
