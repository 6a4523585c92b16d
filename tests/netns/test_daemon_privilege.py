"""`linker daemon --user`: it opens the device and sockets as root, then runs as the user with at most
CAP_NET_ADMIN (none with ``Table = off``), NO_NEW_PRIVS set and the bounding set cut; the tunnel, `wg show` as
root and live route changes over the UAPI still work. Underlay TEST-NET, tunnel 10.x, in namespaces only."""

from __future__ import annotations

import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from linker.dataplane.privilege import CAP_NET_ADMIN, current
from tests.netns.daemons import Node, PeerEntry, peered_pair
from tests.netns.netlab import LINKER, Lab, ping, run, wait_for

pytestmark = pytest.mark.netns

NOBODY = pwd.getpwnam("nobody").pw_uid


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Lab, str, str]]:
    tmp_path.chmod(0o755)  # the dropped daemon still writes nothing here, but may need to traverse it
    with Lab("pv", tmp_path) as lab:
        a, b = lab.host("a"), lab.host("b")
        lab.link(a, "192.0.2.1/24", b, "192.0.2.2/24")
        yield lab, a, b


def no_new_privs(pid: int) -> bool:
    return "NoNewPrivs:\t1" in Path(f"/proc/{pid}/status").read_text()


def test_the_daemon_runs_as_the_user_with_only_net_admin(lab: tuple[Lab, str, str]) -> None:
    lb, a, b = lab
    na, nb = peered_pair(lb, a, "192.0.2.1", b, "192.0.2.2", start=False)
    na.start(extra=["--user", "nobody"])
    nb.start()
    assert na.proc is not None
    who = current(na.proc.pid)
    assert who.uid == NOBODY and who.groups == ()
    assert who.effective == who.permitted == who.bounding == 1 << CAP_NET_ADMIN, who
    assert no_new_privs(na.proc.pid)
    assert ping(a, nb.ip) and ping(b, na.ip), na.log_text()
    assert nb.pub in na.dump(), "wg show (root) reads the dropped daemon's socket"
    # a peer added over the UAPI gets its route: CAP_NET_ADMIN kept for exactly this
    third = PeerEntry("aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gISE=", "10.9.0.0/24", None, 0)
    na.wg_set_peer(third)
    assert wait_for(lambda: "10.9.0.0/24" in run(["ip", "route"], a).stdout, 5), na.log_text()


def test_table_off_keeps_no_capability(lab: tuple[Lab, str, str]) -> None:
    lb, a, _ = lab
    node = Node.make(lb, a, "t", "10.1.0.1/24", "192.0.2.1")
    node.write_config()
    node.conf.write_text(node.config_text().replace("[Interface]\n", "[Interface]\nTable = off\n"))
    node.start(write=False, extra=["--user", "nobody"])
    assert node.proc is not None
    who = current(node.proc.pid)
    assert who.uid == NOBODY and who.effective == who.permitted == who.bounding == 0, who
    assert node.dump() == {}


def test_an_unknown_user_is_refused_before_anything_runs(lab: tuple[Lab, str, str]) -> None:
    lb, a, _ = lab
    node = Node.make(lb, a, "u", "10.1.0.1/24", "192.0.2.1")
    node.write_config()
    proc = lb.spawn(a, [*LINKER, "daemon", str(node.conf), "--interface", node.iface,
                        "--user", "no-such-user-here"], capture=True)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, (out, err)
    assert "no user 'no-such-user-here'" in err and "useradd --system" in err
    assert run(["ip", "link", "show", node.iface], a, check=False).returncode != 0, "nothing is left behind"
