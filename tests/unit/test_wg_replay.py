"""The replay window against the Linux kernel's selftest table (drivers/net/wireguard/selftest/counter.c)."""

from linker.wg.constants import COUNTER_WINDOW_SIZE, REJECT_AFTER_MESSAGES
from linker.wg.replay import ReplayWindow

T_LIM = COUNTER_WINDOW_SIZE + 1
R = REJECT_AFTER_MESSAGES

KERNEL_TABLE = [
    (0, True), (1, True), (1, False), (9, True), (8, True), (7, True), (7, False), (T_LIM, True),
    (T_LIM - 1, True), (T_LIM - 1, False), (T_LIM - 2, True), (2, True), (2, False), (T_LIM + 16, True),
    (3, False), (T_LIM + 16, False), (T_LIM * 4, True), (T_LIM * 4 - (T_LIM - 1), True), (10, False),
    (T_LIM * 4 - T_LIM, False), (T_LIM * 4 - (T_LIM + 1), False), (T_LIM * 4 - (T_LIM - 2), True),
    (T_LIM * 4 + 1 - T_LIM, False), (0, False), (R, False), (R - 1, True), (R, False), (R - 1, False),
    (R - 2, True), (R + 1, False), (R + 2, False), (R - 2, False), (R - 3, True), (0, False),
]


def run(window, seq):
    return [(n, window.mark(n)) for n, _ in seq]


def test_kernel_table():
    w = ReplayWindow()
    for number, (n, expected) in enumerate(KERNEL_TABLE, 1):
        assert w.check(n) == expected or not expected, f"check {number}"
        assert w.mark(n) == expected, f"kernel self-test {number}: counter {n}"


def test_full_window_forward_then_zero():
    w = ReplayWindow()
    assert all(w.mark(i) for i in range(1, COUNTER_WINDOW_SIZE + 1))
    assert w.mark(0)
    assert not w.mark(0)


def test_window_slid_by_one_drops_zero_keeps_one():
    w = ReplayWindow()
    assert all(w.mark(i) for i in range(2, COUNTER_WINDOW_SIZE + 2))
    assert w.mark(1)
    assert not w.mark(0)


def test_backwards_whole_window():
    w = ReplayWindow()
    assert all(w.mark(i) for i in range(COUNTER_WINDOW_SIZE, -1, -1))


def test_backwards_one_past_window():
    w = ReplayWindow()
    assert all(w.mark(i) for i in range(COUNTER_WINDOW_SIZE + 1, 0, -1))
    assert not w.mark(0)


def test_backwards_then_top_then_zero():
    w = ReplayWindow()
    assert all(w.mark(i) for i in range(COUNTER_WINDOW_SIZE, 0, -1))
    assert w.mark(COUNTER_WINDOW_SIZE + 1)
    assert not w.mark(0)


def test_backwards_then_zero_then_top():
    w = ReplayWindow()
    assert all(w.mark(i) for i in range(COUNTER_WINDOW_SIZE, 0, -1))
    assert w.mark(0)
    assert w.mark(COUNTER_WINDOW_SIZE + 1)


def test_window_is_at_least_2048():
    w = ReplayWindow()
    assert w.mark(5000)
    assert w.mark(5000 - 2048)
    assert not w.check(5000 - 2048)
