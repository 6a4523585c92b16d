"""Stand-ins for the distribution tools a sandbox host cannot run as such: ``python -m linker.sandbox.shims NAME ...``.

A sandbox host shares the machine's kernel and software, so the user-data's commands run for real except these,
which the supervisor puts first on the host's PATH (/run/.sandbox/bin), each doing on the host what the real tool
would do there:

- ``aws s3 cp s3://B/K DEST``: the download, with boto3, from the sandbox's own S3 (the host's AWS_ENDPOINT_URL),
  through the host's network: its VPC router, internet gateway and the sandbox internet; ``aws ssm put-parameter``
  likewise (what the gateway's bootstrap records its attempts with);
- ``python3.X``: the machine's interpreter (the controller's base Python), if it is that version: what the
  distribution's python3.X package would be. ``python3.X -m venv`` then makes a real virtual environment with a
  real pip, which installs the gateway from its wheelhouse as on EC2;
- ``systemctl``: ``enable`` links the unit into its targets' .wants; ``start``/``--now``/``restart``/``stop`` ask the
  supervisor, which plays systemd (Restart=, RestartSec=, State/RuntimeDirectory=);
- ``sysctl``: network keys (``net.*``) are set in the host's namespace; host-wide keys are skipped, said so;
- ``dnf``/``yum``/``apt-get``: nothing to install, the host has the machine's software; said so.

Faults for tests: ``LINKER_SANDBOX_FAULTS`` (``linker up --sandbox`` passes it to its hosts) lists
``NAME=COUNT`` pairs, comma-separated: the first COUNT calls of NAME on each host (``always``: every call) fail as
the real tool would fail, saying the fault was injected. NAME is one of ``FAULTS``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from linker.sandbox.layout import FAULTS_VARIABLE

REQUESTS = Path("/run/.sandbox/systemd.jsonl")
UNIT_STATES = Path("/run/.sandbox/units")
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")
NAMES = ("aws", "systemctl", "sysctl", "dnf", "yum", "apt-get", "python3", *(f"python3.{n}" for n in range(8, 15)))
FAULTS = {  # what the real tool prints when it fails that way
    "aws-s3-cp": "download failed: {what}: An error occurred (403) when calling the HeadObject operation: Forbidden",
    "aws-ssm-put-parameter": "An error occurred (AccessDeniedException) when calling the PutParameter operation",
    "dnf": "Error: Failed to download metadata for repo 'amazonlinux': Cannot download repomd.xml",
}
FAULT_COUNTS = Path("/run/.sandbox/faults")


class ShimError(Exception):
    """What the stand-in cannot do; printed to stderr, exit status 1."""


def say(text: str) -> None:
    print(text, flush=True)


# --- faults ---

def faults(spec: str) -> dict[str, int | None]:
    """``NAME=COUNT,...`` as {name: count}, None for ``always``; raises ShimError for what it cannot read."""
    out: dict[str, int | None] = {}
    for item in (i.strip() for i in spec.split(",") if i.strip()):
        name, _, count = item.partition("=")
        if name not in FAULTS or not (count == "always" or count.isdigit()):
            raise ShimError(f"{FAULTS_VARIABLE}: {item!r} is not NAME=COUNT|always with NAME one of {sorted(FAULTS)}")
        out[name] = None if count == "always" else int(count)
    return out


def inject(name: str, what: str = "") -> None:
    """Raise ShimError as the real tool fails when ``LINKER_SANDBOX_FAULTS`` asks for this call to fail."""
    count = faults(os.environ.get(FAULTS_VARIABLE, "")).get(name, 0)
    if count == 0:
        return
    path = FAULT_COUNTS / name
    done = int(path.read_text()) if path.is_file() else 0
    if count is not None and done >= count:
        return
    FAULT_COUNTS.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{done + 1}\n")
    raise ShimError(FAULTS[name].format(what=what) + f" (fault {done + 1} injected by {FAULTS_VARIABLE})")


# --- aws ---

AWS_FLAGS = ("--quiet", "--no-progress", "--only-show-errors", "--no-cli-pager", "--overwrite")
AWS_OPTIONS = ("--cli-connect-timeout", "--cli-read-timeout", "--output")  # how the CLI itself behaves: no effect


def aws(args: list[str]) -> int:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    rest: list[str] = []
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--region" and i + 1 < len(args):
            region, i = args[i + 1], i + 2
            continue
        if a in AWS_FLAGS:
            options[a], i = "", i + 1
            continue
        if a.startswith("--") and i + 1 < len(args):
            options[a], i = args[i + 1], i + 2
            continue
        rest.append(a)
        i += 1
    if rest == ["ssm", "put-parameter"]:
        return put_parameter(options, region or "us-east-1")
    if len(rest) != 4 or rest[:2] != ["s3", "cp"] or not rest[2].startswith("s3://") or \
            set(options) - set(AWS_FLAGS) - set(AWS_OPTIONS):
        raise ShimError(f"aws {' '.join(args)}: the sandbox emulates only `aws s3 cp s3://BUCKET/KEY DEST` and "
                        "`aws ssm put-parameter --name N --value V [--type T] [--overwrite]`")
    inject("aws-s3-cp", rest[2])
    bucket, _, key = rest[2][5:].partition("/")
    dest = Path(rest[3])
    if rest[3].endswith("/") or dest.is_dir():
        dest = dest / key.rsplit("/", 1)[-1]
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    try:
        boto3.session.Session().client("s3", region_name=region or "us-east-1").download_file(bucket, key, str(dest))
    except (BotoCoreError, ClientError) as exc:
        raise ShimError(f"download failed: {rest[2]}: {exc}") from None
    say(f"download: {rest[2]} to {dest}")
    return 0


def put_parameter(options: dict[str, str], region: str) -> int:
    if "--name" not in options or "--value" not in options:
        raise ShimError("aws ssm put-parameter: --name and --value are required")
    inject("aws-ssm-put-parameter")
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    try:
        done = boto3.session.Session().client("ssm", region_name=region).put_parameter(
            Name=options["--name"], Value=options["--value"], Type=options.get("--type", "String"),
            Overwrite="--overwrite" in options)
    except (BotoCoreError, ClientError) as exc:
        raise ShimError(str(exc)) from None
    say(json.dumps({"Version": done["Version"], "Tier": done.get("Tier", "Standard")}))
    return 0


# --- python3.X ---

def python(name: str, args: list[str]) -> int:
    """The machine's interpreter stands in for the distribution's ``python3.X`` package (what dnf would install):
    the same version only, so a gateway's venv (and the wheels pip picks for it) is what the user-data asked for."""
    wanted = name.removeprefix("python")
    have = f"{sys.version_info.major}.{sys.version_info.minor}"
    if wanted not in ("3", have):
        raise ShimError(f"the sandbox's hosts have the machine's Python {have}, not {wanted}")
    base = getattr(sys, "_base_executable", sys.executable)  # the interpreter, not the controller's venv
    os.execv(base, [base, *args])  # noqa: S606 (the machine's python, as the image's would run)


# --- systemctl ---

def unit_path(name: str) -> Path | None:
    return next((Path(d, name) for d in UNIT_DIRS if Path(d, name).is_file()), None)


def required_units(text: str, seen: dict[str, str]) -> dict[str, str]:
    """The unit files of what a unit requires (Requires=), transitively, that are installed: {name: text}."""
    from linker.sandbox.userdata import UserDataError, unit_sections, unit_words
    try:
        names = unit_words(unit_sections(text), "Requires")
    except UserDataError:
        return seen  # the supervisor refuses the unit itself, saying why
    for name in names:
        path = unit_path(name)
        if name not in seen and path is not None:
            seen[name] = path.read_text()
            required_units(seen[name], seen)
    return seen


def request(op: str, unit: str) -> None:
    path = unit_path(unit)
    if path is None and op != "stop":
        raise ShimError(f"Unit {unit} not found.")
    text = path.read_text() if path else ""
    line = json.dumps({"op": op, "unit": unit, "text": text, "requires": required_units(text, {})}) + "\n"
    REQUESTS.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(REQUESTS, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def systemctl(args: list[str]) -> int:
    flags = [a for a in args if a.startswith("-")]
    words = [a for a in args if not a.startswith("-")]
    if not words:
        raise ShimError("systemctl: no command")
    command, units = words[0], [u if "." in u else f"{u}.service" for u in words[1:]]
    if command == "daemon-reload":
        return 0
    if command in ("enable", "disable"):
        from linker.sandbox.userdata import UserDataError, unit_sections
        for unit in units:
            path = unit_path(unit)
            if path is None:
                raise ShimError(f"Unit {unit} not found.")
            try:
                install = unit_sections(path.read_text()).get("Install", [])
            except UserDataError as exc:
                raise ShimError(f"{unit}: {exc}") from None
            for target in (w for k, v in install if k == "WantedBy" for w in v.split()):
                wants = Path("/etc/systemd/system", f"{target}.wants")
                wants.mkdir(parents=True, exist_ok=True)
                link = wants / unit
                if command == "enable" and not link.is_symlink():
                    link.symlink_to(path)
                    say(f"Created symlink {link} → {path}.")
                elif command == "disable" and link.is_symlink():
                    link.unlink()
                    say(f"Removed {link}.")
            if "--now" in flags:
                request("start" if command == "enable" else "stop", unit)
        return 0
    if command in ("start", "stop", "restart"):
        for unit in units:
            request(command, unit)
        return 0
    if command == "is-active":
        states = [(UNIT_STATES / u).read_text().strip() if (UNIT_STATES / u).is_file() else "inactive"
                  for u in units]
        for s in states:
            say(s)
        return 0 if states and all(s == "active" for s in states) else 3
    raise ShimError(f"systemctl {command}: not emulated in the sandbox (enable, disable, start, stop, restart, "
                    "is-active, daemon-reload are)")


# --- sysctl ---

def sysctl_files() -> list[Path]:
    chosen: dict[str, Path] = {}
    for d in SYSCTL_DIRS:
        for f in sorted(Path(d).glob("*.conf")) if Path(d).is_dir() else []:
            chosen.setdefault(f.name, f)  # a file in an earlier directory overrides one of the same name
    files = [chosen[n] for n in sorted(chosen)]
    if Path("/etc/sysctl.conf").is_file():
        files.append(Path("/etc/sysctl.conf"))
    return files


def set_sysctl(key: str, value: str, quiet: bool, ignore: bool = False) -> bool:
    key = key.strip().replace("/", ".")
    if not key.startswith("net."):
        if not quiet:
            say(f"sysctl: {key} skipped: a sandbox host shares the machine's kernel, only net.* is its own")
        return True
    try:
        Path("/proc/sys", *key.split(".")).write_text(value.strip() + "\n")
    except OSError as exc:
        if not ignore:
            print(f"sysctl: cannot set {key}: {exc.strerror}", file=sys.stderr)
        return ignore
    if not quiet:
        say(f"{key} = {value.strip()}")
    return True


def sysctl(args: list[str]) -> int:
    quiet = "-q" in args or "--quiet" in args
    ok = True
    if "--system" in args or "-p" in args or any(a.startswith("--load") for a in args):
        files = sysctl_files() if "--system" in args else [Path(a) for a in args if not a.startswith("-")] or \
            [Path("/etc/sysctl.conf")]
        for f in files:
            if not quiet:
                say(f"* Applying {f} ...")
            for raw in f.read_text().splitlines():
                line = raw.strip()
                if not line or line.startswith(("#", ";")) or "=" not in line:
                    continue
                key, _, value = line.partition("=")
                ignore = key.startswith("-")
                ok &= set_sysctl(key.lstrip("-"), value, quiet, ignore)
        return 0 if ok else 1
    for a in (a for a in args if not a.startswith("-")):
        if "=" in a:
            key, _, value = a.partition("=")
            ok &= set_sysctl(key, value, quiet)
        else:
            real = "/usr/sbin/sysctl" if Path("/usr/sbin/sysctl").exists() else "/sbin/sysctl"
            os.execv(real, ["sysctl", *args])  # noqa: S606 (reading a value: the real tool)
    return 0 if ok else 1


# --- package managers ---

def packages(name: str, args: list[str]) -> int:
    inject(name)
    wanted = [a for a in args[1:] if not a.startswith("-")] if args[:1] == ["install"] else []
    for p in wanted:
        say(f"{name}: {p} comes from the machine (a sandbox host shares its software); nothing installed")
    if not wanted:
        say(f"{name} {' '.join(args)}: nothing to do in the sandbox")
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    name, args = argv[0], argv[1:]
    try:
        if name == "aws":
            return aws(args)
        if name == "systemctl":
            return systemctl(args)
        if name == "sysctl":
            return sysctl(args)
        if name in ("dnf", "yum", "apt-get"):
            return packages(name, args)
        if name.startswith("python3"):
            return python(name, args)
    except ShimError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    print(f"{name}: not a sandbox stand-in", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
