"""What a sandbox host reads from its user-data: a cloud-config document and the systemd units it installs. Pure.

The sandbox does what cloud-init and systemd would do with them (linker.sandbox.cloudinit, linker.sandbox.services),
so it reads them generically, never assuming what the templates contain: files to write, commands to run, and for
a unit its ExecStart, Environment, Restart and the directories systemd makes for it. What it does not emulate is
listed in ``unsupported`` and logged, never silently dropped.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import shlex
from dataclasses import dataclass, field

import yaml

CLOUD_CONFIG_HEADER = "#cloud-config"
RUN_KEYS = ("write_files", "runcmd")
IGNORED_KEYS = ("merge_how", "merge_type")  # how parts are merged: one part here, nothing to merge
_ENCODINGS = ("text/plain", "b64", "base64", "gz", "gzip", "gz+b64", "gzip+base64", "gz+base64", "gzip+b64")


class UserDataError(ValueError):
    """The user-data (or a unit it installs) cannot be read; the message says what is wrong with it."""


@dataclass(frozen=True)
class WriteFile:
    path: str
    content: bytes
    permissions: int = 0o644
    owner: str = "root:root"
    append: bool = False
    defer: bool = False


@dataclass(frozen=True)
class CloudConfig:
    write_files: tuple[WriteFile, ...] = ()
    runcmd: tuple[tuple[str, ...], ...] = ()  # argv each; a string entry becomes ("sh", "-c", entry)
    unsupported: tuple[str, ...] = ()  # top-level keys the sandbox does not emulate


def _decode(raw: bytes | str) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    if data[:2] == b"\x1f\x8b":  # cloud-init accepts gzip-compressed user-data
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise UserDataError(f"user-data looks gzip-compressed but is not: {exc}") from None
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise UserDataError("user-data is not UTF-8 text") from None


def parse_user_data(raw: bytes | str) -> CloudConfig:
    """Parse cloud-config user-data; other formats (shell scripts, MIME multi-part) are refused."""
    text = _decode(raw)
    if not text.startswith(CLOUD_CONFIG_HEADER):
        first = text.splitlines()[0] if text else "(empty)"
        raise UserDataError(f"user-data is not a cloud-config document (it starts with {first[:40]!r})")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserDataError(f"user-data is not valid YAML: {exc}") from None
    if doc is None:
        return CloudConfig()
    if not isinstance(doc, dict):
        raise UserDataError("cloud-config must be a mapping at the top level")
    files = tuple(_write_file(i, e) for i, e in enumerate(doc.get("write_files") or []))
    ordered = tuple(f for f in files if not f.defer) + tuple(f for f in files if f.defer)
    commands = tuple(_command(i, c) for i, c in enumerate(doc.get("runcmd") or []))
    unsupported = tuple(sorted(k for k in doc if k not in RUN_KEYS and k not in IGNORED_KEYS))
    return CloudConfig(ordered, commands, unsupported)


def _write_file(index: int, entry: object) -> WriteFile:
    if not isinstance(entry, dict) or not entry.get("path"):
        raise UserDataError(f"write_files[{index}] has no path")
    path = str(entry["path"])
    if not path.startswith("/"):
        raise UserDataError(f"write_files[{index}]: path {path!r} is not absolute")
    content = entry.get("content", "")
    encoding = str(entry.get("encoding", "text/plain")).lower()
    data = content.encode() if isinstance(content, str) else bytes(content or b"")
    if encoding not in _ENCODINGS:
        raise UserDataError(f"write_files[{index}] ({path}): unknown encoding {encoding!r}")
    try:
        if encoding in ("b64", "base64", "gz+b64", "gzip+base64", "gz+base64", "gzip+b64"):
            data = base64.b64decode(data)
        if encoding.startswith(("gz", "gzip")):
            data = gzip.decompress(data)
    except (binascii.Error, OSError, EOFError) as exc:
        raise UserDataError(f"write_files[{index}] ({path}): content is not {encoding}: {exc}") from None
    return WriteFile(path, data, _mode(index, path, entry.get("permissions", "0644")),
                     str(entry.get("owner", "root:root")), bool(entry.get("append", False)),
                     bool(entry.get("defer", False)))


def _mode(index: int, path: str, value: object) -> int:
    if isinstance(value, int):  # YAML 1.1 reads an unquoted 0644 as the octal number it is
        return value
    try:
        return int(str(value), 8)
    except ValueError:
        raise UserDataError(f"write_files[{index}] ({path}): permissions {value!r} are not octal") from None


def _command(index: int, entry: object) -> tuple[str, ...]:
    if isinstance(entry, str):
        return ("sh", "-c", entry)
    if isinstance(entry, list) and entry and all(isinstance(a, str | int | float) for a in entry):
        return tuple(str(a) for a in entry)
    raise UserDataError(f"runcmd[{index}] is neither a string nor a list of arguments")


# --- systemd units ---

@dataclass(frozen=True)
class Unit:
    """A service unit as the sandbox runs it. ``exec_start``: the command lines of ExecStart, in order."""

    name: str
    exec_start: tuple[tuple[str, ...], ...]
    environment: tuple[tuple[str, str], ...] = ()
    restart: str = "no"
    restart_sec: float = 0.1  # systemd's default
    working_directory: str = "/"
    state_directories: tuple[str, ...] = ()
    state_directory_mode: int = 0o755
    runtime_directories: tuple[str, ...] = ()
    runtime_directory_mode: int = 0o755
    runtime_directory_preserve: str = "no"
    kill_mode: str = "control-group"
    ignore_failure: bool = False
    wanted_by: tuple[str, ...] = ()
    unsupported: tuple[str, ...] = field(default=())
    oneshot: bool = False  # Type=oneshot: started once its ExecStart has exited, successfully
    remain_after_exit: bool = False
    requires: tuple[str, ...] = ()  # started with this unit; this one fails when one of them fails
    after: tuple[str, ...] = ()  # ordering: this unit starts once those it requires have started (or exited)

    def waits_for(self) -> tuple[str, ...]:
        """The required units this one starts after (systemd orders only what After= names)."""
        return tuple(u for u in self.requires if u in self.after)


_SERVICE_KEYS = {"Type", "ExecStart", "Environment", "Restart", "RestartSec", "WorkingDirectory", "StateDirectory",
                 "StateDirectoryMode", "RuntimeDirectory", "RuntimeDirectoryMode", "RuntimeDirectoryPreserve",
                 "User", "Group", "RemainAfterExit", "KillMode"}
# Confinement a real gateway's systemd enforces; the sandbox accepts it without emulating it (its hosts share the
# machine's kernel and files, and run as root): not "unsupported", since nothing the unit does depends on it
_CONFINEMENT_KEYS = {"NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
                     "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
                     "ProtectClock", "ProtectHostname", "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID",
                     "LockPersonality", "RestrictAddressFamilies", "CapabilityBoundingSet", "AmbientCapabilities",
                     "SystemCallArchitectures", "SystemCallFilter", "SystemCallErrorNumber", "UMask", "ReadWritePaths",
                     "ReadOnlyPaths", "KeyringMode", "RemoveIPC", "PrivateIPC", "PrivateMounts", "DevicePolicy",
                     "DeviceAllow", "ProtectProc", "ProcSubset", "MemoryDenyWriteExecute"}
# Requires/After between services are followed (linker.sandbox.hosts); targets are always reached in a sandbox host
_UNIT_KEYS = {"Description", "Wants", "After", "Before", "Requires", "Documentation"}


def unit_sections(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file, each a list of (key, value) in order (keys may repeat), continuations joined."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        if not sep or current is None:
            raise UserDataError(f"line {number}: {raw.strip()!r} is not KEY=VALUE inside a [Section]")
        current.append((key.strip(), value.strip()))
    return sections


def _specifiers(value: str, name: str) -> str:
    if re.search(r"%[^%]", value.replace("%%", "")):
        raise UserDataError(f"{name}: systemd specifiers (%n, %i, ...) are not emulated in the sandbox: {value!r}")
    return value.replace("%%", "%")


def _seconds(value: str, name: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m)?\s*", value)
    if not m:
        raise UserDataError(f"{name}: RestartSec={value!r} is not a time span")
    scale = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, None: 1}[m.group(2)]
    return float(m.group(1)) * scale


def parse_unit(name: str, text: str) -> Unit:
    """Parse a service unit; raises UserDataError naming the unit and the problem."""
    try:
        sections = unit_sections(text)
    except UserDataError as exc:
        raise UserDataError(f"{name}: {exc}") from None
    service = sections.get("Service")
    if service is None:
        raise UserDataError(f"{name}: no [Service] section")
    unsupported = sorted({f"[Unit] {k}" for k, _ in sections.get("Unit", []) if k not in _UNIT_KEYS}
                         | {f"[Service] {k}" for k, _ in service
                            if k not in _SERVICE_KEYS and k not in _CONFINEMENT_KEYS})
    values: dict[str, list[str]] = {}
    for key, value in service:
        values.setdefault(key, []).append(_specifiers(value, name))
    kind = (values.get("Type") or ["simple"])[-1]
    if kind not in ("simple", "exec", "oneshot"):
        unsupported.append(f"[Service] Type={kind} (run as simple)")
    commands: list[tuple[str, ...]] = []
    ignore = False
    for value in values.get("ExecStart", []):
        if not value:  # an empty assignment resets the list
            commands = []
            continue
        prefix = re.match(r"^[-@:+!]*", value).group(0)  # type: ignore[union-attr]
        ignore = ignore or "-" in prefix
        try:
            argv = tuple(shlex.split(value[len(prefix):]))
        except ValueError as exc:
            raise UserDataError(f"{name}: ExecStart={value!r}: {exc}") from None
        if not argv or not argv[0].startswith("/"):
            raise UserDataError(f"{name}: ExecStart must start with an absolute path, not {value!r}")
        commands.append(argv)
    if not commands:
        raise UserDataError(f"{name}: no ExecStart")
    if len(commands) > 1:
        unsupported.append("[Service] ExecStart given more than once (only the first runs)")
    env: dict[str, str] = {}
    for value in values.get("Environment", []):
        try:
            assignments = shlex.split(value)
        except ValueError as exc:
            raise UserDataError(f"{name}: Environment={value!r}: {exc}") from None
        for item in assignments:
            key, sep, val = item.partition("=")
            if not sep or not key:
                raise UserDataError(f"{name}: Environment={value!r}: {item!r} is not KEY=VALUE")
            env[key] = val
    def last(key: str, default: str) -> str:
        return (values.get(key) or [default])[-1]
    def words(key: str) -> tuple[str, ...]:
        return tuple(w for v in values.get(key, []) for w in v.split())
    for key in ("StateDirectory", "RuntimeDirectory"):
        for d in words(key):
            if d.startswith("/") or ".." in d.split("/"):
                raise UserDataError(f"{name}: {key}={d!r} must be a relative path")
    wanted = tuple(w for k, v in sections.get("Install", []) if k == "WantedBy" for w in v.split())
    try:
        state_mode = int(last("StateDirectoryMode", "0755"), 8)
        runtime_mode = int(last("RuntimeDirectoryMode", "0755"), 8)
    except ValueError:
        raise UserDataError(f"{name}: a *DirectoryMode is not an octal mode") from None
    return Unit(
        name=name, exec_start=tuple(commands), environment=tuple(env.items()), restart=last("Restart", "no"),
        restart_sec=_seconds(last("RestartSec", "100ms"), name), working_directory=last("WorkingDirectory", "/"),
        state_directories=words("StateDirectory"), state_directory_mode=state_mode,
        runtime_directories=words("RuntimeDirectory"), runtime_directory_mode=runtime_mode,
        runtime_directory_preserve=last("RuntimeDirectoryPreserve", "no"), ignore_failure=ignore,
        kill_mode=last("KillMode", "control-group"),
        wanted_by=wanted, unsupported=tuple(unsupported), oneshot=kind == "oneshot",
        remain_after_exit=last("RemainAfterExit", "no").lower() in ("yes", "true", "on", "1"),
        requires=unit_words(sections, "Requires"), after=unit_words(sections, "After"))


def unit_words(sections: dict[str, list[tuple[str, str]]], key: str) -> tuple[str, ...]:
    """The unit names a [Unit] dependency key lists (repeated keys add up)."""
    return tuple(w for k, v in sections.get("Unit", []) if k == key for w in v.split())


def restarts_after(unit: Unit, exit_code: int | None) -> bool:
    """Whether systemd restarts ``unit`` after its main process ended with ``exit_code`` (None: killed)."""
    if unit.restart == "always":
        return True
    if unit.restart == "on-failure":
        return exit_code != 0
    if unit.restart == "on-abnormal":
        return exit_code is None
    return False
