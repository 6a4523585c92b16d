"""The checksummed transfer (linker.sandbox.probe) over loopback: digests checked against hashlib directly."""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import time
from typing import Any

import pytest

from linker.sandbox import probe


def free_port(family: socket.AddressFamily = socket.AF_INET) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        return int(s.getsockname()[1])


def receiver(port: int, bind: str = "127.0.0.1", delay: float = 0.0) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def body() -> None:
        time.sleep(delay)
        try:
            box["result"] = probe.receive(port, 10.0, bind)
        except OSError as exc:
            box["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, box


def test_the_receivers_digest_is_the_sha256_of_the_bytes_a_plain_client_sent() -> None:
    port = free_port()
    thread, box = receiver(port)
    data = bytes(range(256)) * 1000
    conn = probe.connect("127.0.0.1", port, 5.0, within=5.0)
    with conn:
        conn.sendall(struct.pack("!Q", len(data)) + data)
        answer = probe.recv_exact(conn, 32)
    thread.join(10)
    assert answer == hashlib.sha256(data).digest()
    assert box["result"] == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "from": "127.0.0.1"}


def test_send_is_verified_and_both_ends_agree() -> None:
    port = free_port()
    thread, box = receiver(port)
    sent = probe.send("127.0.0.1", port, (3 << 20) + 5, 10.0, within=5.0)
    thread.join(10)
    assert sent["verified"] is True and sent["bytes"] == (3 << 20) + 5
    assert sent["sha256"] == box["result"]["sha256"]


def test_the_payload_has_the_size_asked_and_no_two_chunks_alike() -> None:
    chunks = list(probe.payload(5 * probe.CHUNK + 3))
    assert sum(map(len, chunks)) == 5 * probe.CHUNK + 3
    assert len(set(chunks)) == len(chunks)  # a repeated or reordered chunk would change the digest
    assert list(probe.payload(0)) == []


def test_send_retries_connecting_until_the_receiver_listens() -> None:
    port = free_port()
    thread, box = receiver(port, delay=0.8)
    sent = probe.send("127.0.0.1", port, 1000, 10.0, within=5.0)
    thread.join(10)
    assert sent["verified"] and box["result"]["bytes"] == 1000


def test_send_without_retry_fails_at_once_when_nothing_listens() -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        probe.send("127.0.0.1", free_port(), 10, 5.0)
    assert time.monotonic() - started < 1


def test_the_receiver_gives_up_after_its_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(TimeoutError):
        probe.receive(free_port(), 0.2, "127.0.0.1")
    assert capsys.readouterr().out == "listening\n"


def test_main_prints_one_json_line_with_the_error_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert probe.main(["send", "--to", "127.0.0.1", "--port", str(free_port()), "--bytes", "10"]) == 1
    assert capsys.readouterr().out.startswith('{"error": "ConnectionRefusedError')


def test_ipv6() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        port = free_port(socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    thread, box = receiver(port, bind="::1")
    sent = probe.send("::1", port, 70000, 10.0, within=5.0)
    thread.join(10)
    assert sent["verified"] and box["result"]["from"] == "::1"
