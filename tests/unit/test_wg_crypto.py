import pytest

from linker.wg import crypto
from linker.wg.keys import clamp, from_base64, generate_private_key, public_key_of, to_base64

# draft-irtf-cfrg-xchacha-03, section 2.2.1
HCHACHA_KEY = bytes(range(32))
HCHACHA_NONCE = bytes.fromhex("000000090000004a0000000031415927")
HCHACHA_OUT = bytes.fromhex("82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")

# draft-irtf-cfrg-xchacha-03, appendix A.3.1
X_KEY = bytes(range(0x80, 0xA0))
X_NONCE = bytes(range(0x40, 0x58))
X_AAD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
X_PLAIN = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
           b"sunscreen would be it.")
X_CIPHER = bytes.fromhex(
    "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
    "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
    "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
    "21f9664c97637da9768812f615c68b13b52e")
X_TAG = bytes.fromhex("c0875924c1c7987947deafd8780acf49")


def test_hchacha20_draft_vector():
    assert crypto.hchacha20(HCHACHA_KEY, HCHACHA_NONCE) == HCHACHA_OUT


def test_xchacha20poly1305_draft_vector_both_ways():
    sealed = crypto.xaead_encrypt(X_KEY, X_NONCE, X_PLAIN, X_AAD)
    assert sealed == X_CIPHER + X_TAG
    assert crypto.xaead_decrypt(X_KEY, X_NONCE, sealed, X_AAD) == X_PLAIN


@pytest.mark.parametrize("where", [0, 40, len(X_CIPHER), len(X_CIPHER) + 15])
def test_xchacha20poly1305_rejects_any_flipped_bit(where):
    sealed = bytearray(crypto.xaead_encrypt(X_KEY, X_NONCE, X_PLAIN, X_AAD))
    sealed[where] ^= 0x01
    with pytest.raises(crypto.InvalidTag):
        crypto.xaead_decrypt(X_KEY, X_NONCE, bytes(sealed), X_AAD)
    with pytest.raises(crypto.InvalidTag):
        crypto.xaead_decrypt(X_KEY, X_NONCE, crypto.xaead_encrypt(X_KEY, X_NONCE, X_PLAIN, X_AAD), X_AAD[:-1])


def test_kdf_chains_hmac_as_the_whitepaper_says():
    key, data = b"k" * 32, b"input"
    t0 = crypto.hmac(key, data)
    t1 = crypto.hmac(t0, b"\x01")
    t2 = crypto.hmac(t0, t1 + b"\x02")
    t3 = crypto.hmac(t0, t2 + b"\x03")
    assert crypto.kdf1(key, data) == t1
    assert crypto.kdf2(key, data) == (t1, t2)
    assert crypto.kdf3(key, data) == (t1, t2, t3)


def test_aead_nonce_is_the_little_endian_counter_after_four_zero_bytes():
    assert crypto.counter_nonce(1) == bytes(4) + b"\x01" + bytes(7)
    assert crypto.counter_nonce(2**64 - 1) == bytes(4) + b"\xff" * 8


def test_keys_clamped_and_base64_round_trip():
    priv = generate_private_key(lambda n: b"\xff" * n)
    assert priv == clamp(priv) and priv[0] & 7 == 0 and priv[31] & 0xC0 == 0x40
    assert from_base64(to_base64(priv)) == priv
    assert len(public_key_of(priv)) == 32


@pytest.mark.parametrize("bad", ["", "abc", "A" * 44, "!" * 43 + "="])
def test_malformed_base64_key_is_a_value_error_that_does_not_echo_it(bad):
    with pytest.raises(ValueError) as info:
        from_base64(bad)
    assert bad not in str(info.value) or bad == ""


def test_low_order_public_key_fails_dh():
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    with pytest.raises(ValueError):
        crypto.dh(X25519PrivateKey.generate(), bytes(32))
