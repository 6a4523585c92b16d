"""The failover benchmark's and HA tests' reading of `ping -D` output (linker.sandbox.chaos.gaps)."""

from __future__ import annotations

from linker.sandbox.chaos import gaps


def line(ts: float, seq: int) -> str:
    return f"[{ts:.6f}] 64 bytes from 10.20.2.10: icmp_seq={seq} ttl=62 time=1.10 ms"


def test_the_longest_gap_between_replies_with_the_edges_of_the_run():
    text = "\n".join(["PING 10.20.2.10 (10.20.2.10) 56(84) bytes of data.",
                      line(100.1, 1), line(100.2, 2), "no answer yet for icmp_seq=3",
                      line(104.9, 50), line(105.0, 51), "--- 10.20.2.10 ping statistics ---"])
    g = gaps(text, started=100.0, stopped=105.5)
    assert g.replies == 4 and round(g.longest, 3) == 4.7 and g.longest_at == 100.2


def test_no_reply_at_all_is_one_gap_as_long_as_the_run():
    g = gaps("PING x\nFrom 10.10.1.4 icmp_seq=1 Destination Host Unreachable\n", started=10.0, stopped=25.0)
    assert g.replies == 0 and g.longest == 15.0 and g.longest_at == 10.0


def test_a_silent_end_counts():
    g = gaps(line(1.05, 1) + "\n" + line(1.15, 2), started=1.0, stopped=9.0)
    assert round(g.longest, 2) == 7.85
