"""WireGuard's constants: those of the protocol (whitepaper section 6), then linker's own."""

from __future__ import annotations

# --- Protocol constants (whitepaper 6.1 and the kernel/wireguard-go implementations) ---
REKEY_AFTER_MESSAGES = 1 << 60
REJECT_AFTER_MESSAGES = (1 << 64) - (1 << 13) - 1
REKEY_AFTER_TIME = 120.0
REJECT_AFTER_TIME = 180.0
REKEY_ATTEMPT_TIME = 90.0
REKEY_TIMEOUT = 5.0
KEEPALIVE_TIMEOUT = 10.0
COOKIE_REFRESH_TIME = 120.0
MAX_TIMER_HANDSHAKES = int(REKEY_ATTEMPT_TIME / REKEY_TIMEOUT)  # 18 retries, then give up
REKEY_TIMEOUT_JITTER_MAX = 1.0 / 3  # up to 333 ms added to each handshake retry
HANDSHAKE_INITIATION_RATE = 1.0 / 50  # a peer's initiations are consumed at most 50 times a second
# A responder-side initiator rekeys this long before its session would be rejected (timersKeepKeyFreshReceiving)
REKEY_ON_RECEIVE_AFTER = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT

CONSTRUCTION = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
IDENTIFIER = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
LABEL_MAC1 = b"mac1----"
LABEL_COOKIE = b"cookie--"

MESSAGE_INITIATION = 1
MESSAGE_RESPONSE = 2
MESSAGE_COOKIE_REPLY = 3
MESSAGE_TRANSPORT = 4

MESSAGE_INITIATION_SIZE = 148
MESSAGE_RESPONSE_SIZE = 92
MESSAGE_COOKIE_REPLY_SIZE = 64
MESSAGE_TRANSPORT_HEADER_SIZE = 16
MESSAGE_TRANSPORT_MIN_SIZE = MESSAGE_TRANSPORT_HEADER_SIZE + 16  # header + Poly1305 tag (a keepalive)

KEY_LEN = 32
TAG_LEN = 16
PADDING_MULTIPLE = 16

# --- Replay window (as the Linux kernel: 8192 bits in 64-bit blocks, one block redundant) ---
COUNTER_BITS_TOTAL = 8192
COUNTER_BLOCK_BITS = 64
COUNTER_BLOCKS = COUNTER_BITS_TOTAL // COUNTER_BLOCK_BITS
COUNTER_WINDOW_SIZE = COUNTER_BITS_TOTAL - COUNTER_BLOCK_BITS

# --- Implementation constants (linker's choices, not the protocol's) ---
MAX_STAGED_PACKETS = 128  # packets queued per peer while a handshake is under way
MAX_DATAGRAM_SIZE = 65535
# The tunnel MTU when none is configured: a 1500-byte underlay less the worst-case WireGuard overhead over IPv6
# (40 IPv6 + 8 UDP + 32 transport header and tag), as wg-quick chooses. Its one home: the daemon's config and the
# device import it.
DEFAULT_MTU = 1420
# Under load: more handshake messages than this in one second make the responder demand cookies (MAC2).
UNDER_LOAD_HANDSHAKES_PER_SECOND = 128
UNDER_LOAD_HOLD_TIME = 1.0  # stay under load this long after the rate drops (wireguard-go UnderLoadAfterTime)
# Per-source rate limit of handshake messages that carry a valid cookie (wireguard-go ratelimiter)
RATELIMIT_PACKETS_PER_SECOND = 20
RATELIMIT_BURST = 5
