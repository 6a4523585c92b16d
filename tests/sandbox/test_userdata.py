"""The sandbox reads user-data and units generically: the real rendered gateway user-data, and the edge cases."""

from __future__ import annotations

import base64
import gzip

import pytest

from linker.control.render import GatewayInputs, user_data
from linker.sandbox.userdata import UserDataError, parse_unit, parse_user_data, restarts_after

G = GatewayInputs(link="prod", site="eu-west-1", region="eu-west-1", port=51999,
                  package_bucket="linker-prod-eu-west-1-123456789012", package_key="wheels/ab12/linker-0.1.0.whl",
                  package_sha256="ab12" * 16)


def test_the_rendered_gateway_user_data_gives_files_commands_and_a_runnable_unit() -> None:
    config = parse_user_data(user_data(G).encode())
    files = {f.path: f for f in config.write_files}
    assert "/etc/linker/agent.json" in files and files["/etc/linker/agent.json"].permissions == 0o644
    units = {f.path.rsplit("/", 1)[1]: parse_unit(f.path.rsplit("/", 1)[1], f.content.decode())
             for f in config.write_files if f.path.startswith("/etc/systemd/system/") and f.path.endswith(".service")}
    assert sorted(units) == ["linker-bootstrap.service", "linker-gateway.service"]
    unit = units["linker-gateway.service"]
    assert unit.exec_start[0][0].startswith("/") and unit.restart in ("always", "on-failure")
    assert dict(unit.environment)["AWS_REGION"] == "eu-west-1"
    assert unit.waits_for() == ("linker-bootstrap.service",)  # the agent starts once the bootstrap succeeded
    boot = units["linker-bootstrap.service"]
    assert boot.oneshot and boot.remain_after_exit and boot.restart == "no"
    assert files[boot.exec_start[0][0]].permissions == 0o755  # the script, written by cloud-init
    assert all(u.unsupported == () for u in units.values())  # everything the templates' units say is emulated
    assert config.unsupported == ()
    assert all(isinstance(c, tuple) and c for c in config.runcmd)
    started = [c for c in config.runcmd if c[0] == "systemctl" and ("start" in c or "--now" in c)]
    assert started and started[-1][-1] == "linker-gateway.service"


def test_encodings_modes_and_gzip_user_data() -> None:
    text = ("#cloud-config\nwrite_files:\n"
            f"  - path: /a\n    encoding: b64\n    content: {base64.b64encode(b'hello').decode()}\n"
            "    permissions: '0600'\n"
            f"  - path: /b\n    encoding: gz+b64\n    content: {base64.b64encode(gzip.compress(b'x')).decode()}\n"
            "    permissions: 0755\n    defer: true\n"
            "  - path: /c\n    content: plain\n"
            "runcmd:\n  - echo hi\n  - [ls, -l, 3]\nbootcmd: [x]\n")
    config = parse_user_data(gzip.compress(text.encode()))
    assert [(f.path, f.content, f.permissions) for f in config.write_files] == [
        ("/a", b"hello", 0o600), ("/c", b"plain", 0o644), ("/b", b"x", 0o755)]  # deferred files last
    assert config.runcmd == (("sh", "-c", "echo hi"), ("ls", "-l", "3"))
    assert config.unsupported == ("bootcmd",)


@pytest.mark.parametrize(("text", "problem"), [
    ("#!/bin/sh\necho hi\n", "not a cloud-config"),
    ("#cloud-config\n: [\n", "not valid YAML"),
    ("#cloud-config\n- 1\n", "mapping"),
    ("#cloud-config\nwrite_files:\n  - content: x\n", "no path"),
    ("#cloud-config\nwrite_files:\n  - path: rel\n", "not absolute"),
    ("#cloud-config\nwrite_files:\n  - path: /x\n    encoding: rot13\n", "unknown encoding"),
    ("#cloud-config\nwrite_files:\n  - path: /x\n    permissions: rw\n", "not octal"),
    ("#cloud-config\nruncmd:\n  - {a: 1}\n", "runcmd[0]"),
])
def test_bad_user_data_is_refused_saying_why(text: str, problem: str) -> None:
    with pytest.raises(UserDataError, match=problem.replace("[", r"\[")):
        parse_user_data(text)


def test_unit_parsing_follows_systemd() -> None:
    unit = parse_unit("x.service", """
[Unit]
Description=x
After=network-online.target

[Service]
ExecStart=-/usr/bin/env FOO="a b" \\
    sleep 1
Environment="A=1 2" B=3
Environment=B=4
Restart=on-failure
RestartSec=500ms
StateDirectory=x x/y
StateDirectoryMode=0700
RuntimeDirectory=x
LimitNOFILE=1000

[Install]
WantedBy=multi-user.target
""")
    assert unit.exec_start == (("/usr/bin/env", "FOO=a b", "sleep", "1"),) and unit.ignore_failure
    assert dict(unit.environment) == {"A": "1 2", "B": "4"}
    assert unit.restart_sec == 0.5 and unit.state_directories == ("x", "x/y") and unit.state_directory_mode == 0o700
    assert unit.runtime_directories == ("x",) and unit.wanted_by == ("multi-user.target",)
    assert unit.unsupported == ("[Service] LimitNOFILE",)
    assert restarts_after(unit, 1) and not restarts_after(unit, 0)
    assert restarts_after(parse_unit("y", "[Service]\nExecStart=/bin/true\nRestart=always\n"), 0)


def test_oneshot_units_and_their_dependencies() -> None:
    unit = parse_unit("a.service", "[Unit]\nRequires=b.service c.service\nAfter=b.service\nAfter=x.target\n"
                                   "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n")
    assert unit.oneshot and unit.remain_after_exit and unit.unsupported == ()
    assert unit.requires == ("b.service", "c.service") and unit.after == ("b.service", "x.target")
    assert unit.waits_for() == ("b.service",)  # c is started alongside, not waited for (no After=)
    plain = parse_unit("p.service", "[Service]\nExecStart=/bin/true\nExecStart=/bin/false\nType=forking\n")
    assert not plain.oneshot and not plain.remain_after_exit and plain.requires == ()
    assert set(plain.unsupported) == {"[Service] Type=forking (run as simple)",
                                      "[Service] ExecStart given more than once (only the first runs)"}


@pytest.mark.parametrize(("text", "problem"), [
    ("[Unit]\nDescription=x\n", "no \\[Service\\]"),
    ("[Service]\nRestart=always\n", "no ExecStart"),
    ("[Service]\nExecStart=sleep 1\n", "absolute path"),
    ("[Service]\nExecStart=/bin/echo %n\n", "specifiers"),
    ("[Service]\nExecStart=/bin/true\nRestartSec=soon\n", "time span"),
    ("[Service]\nExecStart=/bin/true\nStateDirectory=/abs\n", "relative path"),
    ("ExecStart=/bin/true\n", "inside a \\[Section\\]"),
])
def test_bad_units_are_refused_saying_why(text: str, problem: str) -> None:
    with pytest.raises(UserDataError, match=problem):
        parse_unit("bad.service", text)
