"""Known-answer tests for the crypto primitives used by KSeF."""

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ksefnet_core import crypto

# NIST SP 800-38A, F.2.5 CBC-AES256.Encrypt, first block.
NIST_KEY = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
NIST_IV = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
NIST_PLAIN = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
NIST_CIPHER = bytes.fromhex("f58c4c04d6e5f1ba779eabfb5f7bfbd6")


def test_sha256_encodings_known_answer():
    assert crypto.sha256_b64(b"abc") == "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
    assert crypto.sha256_b64url(b"abc") == "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
    assert len(crypto.sha256_b64(b"")) == 44 and len(crypto.sha256_b64url(b"")) == 43


def test_aes_cbc_matches_nist_vector_and_pads_pkcs7():
    out = crypto.aes_encrypt(NIST_PLAIN, NIST_KEY, NIST_IV)
    assert out[:16] == NIST_CIPHER
    assert len(out) == 32  # a full block of PKCS#7 padding follows a block-aligned plaintext
    assert crypto.aes_decrypt(out, NIST_KEY, NIST_IV) == NIST_PLAIN


def test_ciphertext_size_rule_from_spec_example():
    assert crypto.encrypted_size(6480) == 6496
    key = crypto.SymmetricKey.generate()
    assert len(key.encrypt(b"x" * 6480)) == 6496


def test_streaming_encryption_equals_one_shot():
    key = crypto.SymmetricKey.generate()
    data = bytes(range(256)) * 1000
    chunks = [data[i : i + 7777] for i in range(0, len(data), 7777)]
    streamed = b"".join(crypto.aes_encrypt_stream(chunks, key.key, key.iv))
    assert streamed == key.encrypt(data)
    assert b"".join(crypto.aes_decrypt_stream([streamed[:100], streamed[100:]], key.key, key.iv)) == data


def test_decrypt_rejects_bad_length_and_padding():
    key = crypto.SymmetricKey.generate()
    with pytest.raises(ValueError):
        key.decrypt(b"short")
    with pytest.raises(ValueError):
        key.decrypt(b"\0" * 32)  # padding is garbage with overwhelming probability


def test_symmetric_key_repr_hides_key():
    key = crypto.SymmetricKey.generate()
    assert key.key.hex() not in repr(key) and "hidden" in repr(key)


def test_rsa_oaep_uses_sha256_for_hash_and_mgf1():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ciphertext = crypto.rsa_oaep_encrypt(private.public_key(), b"token|1700000000000")
    oaep256 = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    assert private.decrypt(ciphertext, oaep256) == b"token|1700000000000"
    oaep1 = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    with pytest.raises(ValueError):
        private.decrypt(ciphertext, oaep1)


def test_public_key_id_is_sha256_of_spki():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    assert crypto.public_key_id(private.public_key()) == expected


def test_parse_datetime_accepts_ksef_forms():
    a = crypto.parse_datetime("2025-07-11T12:23:56.0154302+00:00")
    b = crypto.parse_datetime("2025-07-11T12:23:56.0154302Z")
    c = crypto.parse_datetime("2025-07-11T12:23:56.0154302")
    assert a == b == c
    assert a.microsecond == 15430


def test_sealed_secrets_open_only_with_their_key():
    from ksefnet_core.crypto import derive_key, seal, unseal

    key = derive_key("database-secret-1", "credentials")
    assert (
        key
        != derive_key("database-secret-1", "other purpose")
        != derive_key("database-secret-2", "credentials")
    )
    sealed = seal(key, b"20261125-EC-XYZ|nip-5265877635|abc")
    assert sealed.startswith("sealed:v1:") and "nip-5265877635" not in sealed
    assert seal(key, b"same") != seal(key, b"same")  # a fresh nonce each time
    assert unseal(key, sealed) == b"20261125-EC-XYZ|nip-5265877635|abc"
    with pytest.raises(ValueError):
        unseal(derive_key("database-secret-2", "credentials"), sealed)
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(ValueError):
        unseal(key, tampered)
