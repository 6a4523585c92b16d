"""Transport sessions: one keypair's ciphers, counters and replay window (whitepaper 5.4.6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from linker.wg.constants import (
    MESSAGE_TRANSPORT,
    PADDING_MULTIPLE,
    REJECT_AFTER_MESSAGES,
    REJECT_AFTER_TIME,
)
from linker.wg.crypto import counter_nonce
from linker.wg.messages import TRANSPORT_HEADER
from linker.wg.noise import SessionKeys
from linker.wg.replay import ReplayWindow

_NONCE_PREFIX = bytes(4)
OVERHEAD = TRANSPORT_HEADER.size + 16  # a transport message: header, ciphertext, Poly1305 tag
# the padding's zeros (0 to 15 bytes, whitepaper 5.4.6), made once: a lone packet allocates none
_ZEROS = tuple(bytes(n) for n in range(PADDING_MULTIPLE))

if TYPE_CHECKING:
    from linker.wg.peer import Peer


class Keypair:
    """A session's keys in both directions. The raw keys are not kept: only the cipher objects."""

    __slots__ = ("_encrypt", "_recv", "_send", "created", "initiator", "local_index", "open_into", "opener", "peer",
                 "remote_index", "replay", "send_counter")

    def __init__(self, keys: SessionKeys, peer: Peer, now: float) -> None:
        self._send = ChaCha20Poly1305(keys.send)
        self._recv = ChaCha20Poly1305(keys.receive)
        # bound once: the packet paths call them without a property or a method lookup on every packet
        self._encrypt = self._send.encrypt
        # the receive cipher's decrypt(nonce, ciphertext, None) -> plaintext, and decrypt_into(nonce, ciphertext,
        # None, out), which writes the plaintext (16 bytes shorter than the ciphertext) into ``out``; both raise
        # InvalidTag (``out`` then holds nothing of use). The caller checks and marks the replay window.
        self.opener: Callable[[bytes, bytes, None], bytes] = self._recv.decrypt
        self.open_into: Callable[[bytes, bytes, None, memoryview], None] = self._recv.decrypt_into
        self.initiator = keys.initiator
        self.local_index = keys.local_index
        self.remote_index = keys.remote_index
        self.peer = peer
        self.created = now
        self.send_counter = 0
        self.replay = ReplayWindow()

    def can_send(self, now: float, count: int = 1) -> bool:
        """Whether ``count`` more messages may be sent under this session."""
        return self.send_counter + count <= REJECT_AFTER_MESSAGES and now - self.created < REJECT_AFTER_TIME

    def can_receive(self, now: float) -> bool:
        return now - self.created < REJECT_AFTER_TIME

    def seal(self, packet: bytes, mtu: int) -> bytes:
        """Encrypt one IP packet (or b"" for a keepalive) into a transport message; advances the counter.

        The one-packet form of ``seal_many`` (the same padding), without its lists or helper calls: the latency
        path of an idle tunnel, where with cold caches every call costs."""
        counter = self.send_counter
        self.send_counter = counter + 1
        header = TRANSPORT_HEADER.pack(MESSAGE_TRANSPORT, self.remote_index, counter)
        size = len(packet)
        padded = (size + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1)
        if padded > mtu:
            padded = max(mtu, size)
        if padded != size:
            packet = bytes(packet) + _ZEROS[padded - size]
        return header + self._encrypt(_NONCE_PREFIX + header[8:], packet, None)

    def seal_many(self, packets: list, mtu: int) -> list:
        """Encrypt IP packets (bytes-like; b"" is a keepalive) into transport messages, counters in order.

        Each plaintext is zero-padded to a multiple of 16 bytes, but not beyond ``mtu`` (whitepaper 5.4.6).
        The messages are views of one buffer made for this call, each sealed straight into its place
        (``encrypt_into``): one allocation per batch instead of two per packet, and no copy of the ciphertext
        behind its header. The caller checks ``can_send`` for the whole batch first.
        """
        seal_into = self._send.encrypt_into
        pack_into = TRANSPORT_HEADER.pack_into
        remote = self.remote_index
        counter = self.send_counter
        sizes = []
        room = 0
        for packet in packets:
            size = len(packet)  # the padding, inline: this loop runs once per packet under load
            padded = (size + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1)
            if padded > mtu:
                padded = max(mtu, size)
            sizes.append(padded)
            room += padded + OVERHEAD
        buf = bytearray(room)
        view = memoryview(buf)
        out = []
        at = 0
        for packet, padded in zip(packets, sizes, strict=True):
            if padded != len(packet):
                packet = bytes(packet) + bytes(padded - len(packet))
            pack_into(buf, at, MESSAGE_TRANSPORT, remote, counter)
            # the nonce is 32 zero bits then the counter, little-endian: the header's last 8 bytes
            end = at + padded + OVERHEAD
            seal_into(_NONCE_PREFIX + buf[at + 8:at + 16], packet, None, view[at + 16:end])
            out.append(view[at:end])
            at = end
            counter += 1
        self.send_counter = counter
        return out

    def open(self, counter: int, ciphertext: bytes) -> bytes:
        """Decrypt a transport payload. Raises InvalidTag. The caller checks and marks the replay window."""
        return self._recv.decrypt(counter_nonce(counter), ciphertext, None)
