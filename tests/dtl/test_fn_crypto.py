"""Encryption functions: encrypt/decrypt (Fernet), encrypt-pki/decrypt-pki (RSA) and encrypt-pgp/decrypt-pgp."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from dtl import DTLCompileError, DTLRuntimeError, compile_expression
from dtl._compiler import Compiler
from dtl._context import Ctx, Env
from dtl._fn_crypto import fernet_key


def ev(expr: Any, source: Any = None) -> Any:
    return compile_expression(expr).evaluate(source)


def ev_with_secrets(expr: Any, secrets: dict[str, str]) -> Any:
    compiler = Compiler()
    compiler.secrets = secrets  # type: ignore[attr-defined]
    return compiler.expression(expr, "expr")(Ctx({}, {}, Env()))


# A test-only OpenPGP key pair (ed25519 + cv25519) made with GnuPG for these tests; passphrase "valid-password".
PGP_PUBLIC_KEY = """-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEawNgBBYJKwYBBAHaRw8BAQdACZEJvSUBfSQL1uluafpcXtLLkH98nJiy+kiu
IiE+bXu0H0RUTCBUZXN0IDxkdGwtdGVzdEBleGFtcGxlLm9yZz6IkAQTFggAOBYh
BBiXvo62lLYh0ijBen/dMbCyPW7dBQJrA2AEAhsDBQsJCAcCBhUKCQgLAgQWAgMB
Ah4BAheAAAoJEH/dMbCyPW7delkA/iJDn41+T78CxYh5r8f4w+/+Fksf+iWbeytY
Sh1YLMsxAP9HA6g+GHpZSJ0pbNiYYJoFCx6AZmDJ83GHaWPrtB17Drg4BGsDYAYS
CisGAQQBl1UBBQEBB0AGKA/n3fUREXyGADnFTVc6zykFc7ulP9R9cqRkaMB7EgMB
CAeIeAQYFggAIBYhBBiXvo62lLYh0ijBen/dMbCyPW7dBQJrA2AGAhsMAAoJEH/d
MbCyPW7dti4A/1eEjnHaOk51jih9dgtGIx+o+xEO1Qsbx4BlL8uwcbElAP47y7qU
+18pKM2IBQ+BUVm74LRyOxQ5ZpvF7rKRlOVKBg==
=eQOt
-----END PGP PUBLIC KEY BLOCK-----
"""

PGP_PRIVATE_KEY = """-----BEGIN PGP PRIVATE KEY BLOCK-----

lIYEawNgBBYJKwYBBAHaRw8BAQdACZEJvSUBfSQL1uluafpcXtLLkH98nJiy+kiu
IiE+bXv+BwMCDcyOxd0PAyz/XABaKZvHbunUhs/TLnUMlce8jG+wXQG89bRUtxI/
/mQoUYHIHFdPPgAukF/lBwuFc1VQFUGTjAsWDxN3b6isujKN/d3MILQfRFRMIFRl
c3QgPGR0bC10ZXN0QGV4YW1wbGUub3JnPoiQBBMWCAA4FiEEGJe+jraUtiHSKMF6
f90xsLI9bt0FAmsDYAQCGwMFCwkIBwIGFQoJCAsCBBYCAwECHgECF4AACgkQf90x
sLI9bt16WQD+IkOfjX5PvwLFiHmvx/jD7/4WSx/6JZt7K1hKHVgsyzEA/0cDqD4Y
ellInSls2JhgmgULHoBmYMnzcYdpY+u0HXsOnIsEawNgBhIKKwYBBAGXVQEFAQEH
QAYoD+fd9RERfIYAOcVNVzrPKQVzu6U/1H1ypGRowHsSAwEIB/4HAwJBNjI1x6cv
af9pJXNIb72scQSQz/uKHAIKBNoyiTE+aZY9Tzuitx8SsmK31/yWFHl1ILs88+sc
cGvMKZVeZK+46PzQnPwuL1ZNbOmd5JjjiHgEGBYIACAWIQQYl76OtpS2IdIowXp/
3TGwsj1u3QUCawNgBgIbDAAKCRB/3TGwsj1u3bYuAP9XhI5x2jpOdY4ofXYLRiMf
qPsRDtULG8eAZS/LsHGxJQD+O8u6lPtfKSjNiAUPgVFZu+C0cjsUOWabxe6ykZTl
SgY=
=arTf
-----END PGP PRIVATE KEY BLOCK-----
"""

# "from gpg\\n" encrypted to PGP_PUBLIC_KEY by GnuPG (interoperability check).
PGP_MESSAGE_FROM_GNUPG = """-----BEGIN PGP MESSAGE-----

hF4DKd4elvGXRP4SAQdAyWLMCQW3iYBr4hHxyyFrDiXnfMbohOI8S4NTv6LKGkgw
s0cydrFrvHhoW1Zqw1rft5rpXYBC5g/j0XmO0Rxw/9J9T77lzMPJReIGCcxK6KQg
0kQBnkEoBrqt+S8+y9ZPqhQ4wATiacvG3gpdYFH9xL+PINXAm8NOjd1/fE9ewbj6
EVnXe1KEaB+HWrTp9e/VyAR/J0WciA==
=leQ6
-----END PGP MESSAGE-----
"""

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PRIVATE_PEM = RSA_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption()).decode()
RSA_PRIVATE_PKCS8_PEM = RSA_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode()
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
EC_PUBLIC_PEM = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


# -- encrypt / decrypt -----------------------------------------------------------------------------


def test_encrypt_decrypt_roundtrip() -> None:
    assert ev(["decrypt", "secret", ["encrypt", "secret", ["list", "a", "b", "c"]]]) == ["a", "b", "c"]
    assert ev(["decrypt", "secret", ["encrypt", "secret", "blåbær"]]) == "blåbær"


def test_encrypt_returns_fernet_bytes() -> None:
    token = ev(["encrypt", "secret", "a"])
    assert isinstance(token, bytes)
    assert ev(["is-bytes", ["encrypt", "secret", "a"]]) is True
    assert Fernet(fernet_key("secret")).decrypt(token) == b"a"
    # a fresh IV every time
    assert ev(["encrypt", "secret", "a"]) != token


def test_encrypt_ignores_non_strings() -> None:
    assert ev(["encrypt", "secret", 12]) is None
    assert ev(["encrypt", "secret", None]) is None
    assert len(ev(["encrypt", "secret", ["list", 1, "a", None]])) == 1
    assert ev(["decrypt", "secret", ["encrypt", "secret", ["bytes", "raw"]]]) == "raw"


def test_decrypt_ignores_what_it_cannot_decrypt() -> None:
    assert ev(["decrypt", "other", ["encrypt", "secret", "a"]]) is None
    assert ev(["decrypt", "secret", ["list", "garbage", 1, ["encrypt", "secret", "x"]]]) == ["x"]
    assert ev(["decrypt", "secret", None]) is None


def test_decrypt_accepts_the_token_as_a_string() -> None:
    token = Fernet(fernet_key("pw")).encrypt(b"hello").decode()
    assert ev(["decrypt", "pw", token]) == "hello"


def test_decrypt_returns_bytes_that_are_not_utf8() -> None:
    token = Fernet(fernet_key("pw")).encrypt(b"\xff\xfe")
    assert ev(["decrypt", "pw", "_S.t"], {"t": token}) == b"\xff\xfe"


def test_encrypt_with_computed_key() -> None:
    expr = ["decrypt", "_S.key", ["encrypt", "_S.key", "_S.v"]]
    assert ev(expr, {"key": "k1", "v": "value"}) == "value"
    assert ev(expr, {"key": 5, "v": "value"}) is None


def test_encrypt_key_must_be_a_string() -> None:
    with pytest.raises(DTLCompileError):
        compile_expression(["encrypt", 12, "a"])


def test_secret_keys() -> None:
    secrets = {"enc-key": "s3cret"}
    expr = ["decrypt", "$SECRET(enc-key)", ["encrypt", "$SECRET(enc-key)", ["list", "a", "b", "c"]]]
    assert ev_with_secrets(expr, secrets) == ["a", "b", "c"]
    assert ev_with_secrets(["decrypt", "s3cret", ["encrypt", "$SECRET(enc-key)", "x"]], secrets) == "x"
    with pytest.raises(DTLCompileError):
        ev_with_secrets(["encrypt", "$SECRET(missing)", "a"], secrets)
    with pytest.raises(DTLCompileError):
        compile_expression(["encrypt", "$SECRET(enc-key)", "a"])  # no secrets configured


# -- encrypt-pki / decrypt-pki ---------------------------------------------------------------------


def test_pki_roundtrip() -> None:
    encrypted = ["encrypt-pki", RSA_PUBLIC_PEM, ["json-transit", ["list", ["list", "a", "b", "c"]]]]
    expr = ["json-transit-parse", ["decrypt-pki", RSA_PRIVATE_PEM, encrypted]]
    assert ev(expr) == [["a", "b", "c"]]
    assert ev(["decrypt-pki", RSA_PRIVATE_PKCS8_PEM, ["encrypt-pki", RSA_PUBLIC_PEM, "secret-passphrase"]]) == \
        "secret-passphrase"


def test_encrypt_pki_uses_oaep_sha1_rsa() -> None:
    data = ev(["encrypt-pki", RSA_PUBLIC_PEM, "hello"])
    assert isinstance(data, bytes)
    assert len(data) == 256  # RSA-2048
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    assert RSA_KEY.decrypt(data, oaep) == b"hello"


def test_encrypt_pki_lists_and_non_strings() -> None:
    encrypted = ev(["encrypt-pki", RSA_PUBLIC_PEM, ["list", "a", 1, None, "b"]])
    assert len(encrypted) == 2
    assert ev(["decrypt-pki", RSA_PRIVATE_PEM, "_S.v"], {"v": encrypted}) == ["a", "b"]
    assert ev(["encrypt-pki", RSA_PUBLIC_PEM, 12]) is None


def test_encrypt_pki_value_too_long_fails() -> None:
    with pytest.raises(DTLRuntimeError):
        ev(["encrypt-pki", RSA_PUBLIC_PEM, "x" * 300])


def test_decrypt_pki_ignores_what_it_cannot_decrypt() -> None:
    assert ev(["decrypt-pki", RSA_PRIVATE_PEM, "not bytes"]) is None
    assert ev(["decrypt-pki", RSA_PRIVATE_PEM, ["bytes", "garbage"]]) is None


@pytest.mark.parametrize(
    "expr",
    [
        ["encrypt-pki", "not a key", "a"],
        ["encrypt-pki", EC_PUBLIC_PEM, "a"],
        ["encrypt-pki", RSA_PRIVATE_PEM, "a"],
        ["decrypt-pki", RSA_PUBLIC_PEM, "~bYWJj"],
        ["decrypt-pki", 1, "~bYWJj"],
    ],
)
def test_pki_invalid_constant_keys(expr: list[Any]) -> None:
    with pytest.raises(DTLCompileError):
        compile_expression(expr)


def test_pki_computed_invalid_key_gives_null() -> None:
    assert ev(["encrypt-pki", "_S.key", "a"], {"key": "not a key"}) is None


# -- encrypt-pgp / decrypt-pgp ---------------------------------------------------------------------


def test_pgp_roundtrip() -> None:
    assert ev(["decrypt-pgp", PGP_PRIVATE_KEY, "valid-password",
               ["encrypt-pgp", PGP_PUBLIC_KEY, ["list", "data", "data2"]]]) == ["data", "data2"]
    assert ev(["decrypt-pgp", PGP_PRIVATE_KEY, "valid-password",
               ["encrypt-pgp", PGP_PUBLIC_KEY, "secret message"]]) == "secret message"


def test_encrypt_pgp_gives_armoured_messages() -> None:
    message = ev(["encrypt-pgp", PGP_PUBLIC_KEY, "secret-message"])
    assert isinstance(message, str)
    assert message.startswith("-----BEGIN PGP MESSAGE-----")
    assert ev(["encrypt-pgp", PGP_PUBLIC_KEY, ["list", 1, "a"]])[0].startswith("-----BEGIN PGP MESSAGE-----")
    assert ev(["encrypt-pgp", PGP_PUBLIC_KEY, 1]) is None


def test_decrypt_pgp_reads_gnupg_messages() -> None:
    assert ev(["decrypt-pgp", PGP_PRIVATE_KEY, "valid-password", PGP_MESSAGE_FROM_GNUPG]) == "from gpg\n"


def test_decrypt_pgp_ignores_what_it_cannot_decrypt() -> None:
    assert ev(["decrypt-pgp", PGP_PRIVATE_KEY, "valid-password", ["list", "garbage", 1]]) == []
    assert ev(["decrypt-pgp", PGP_PRIVATE_KEY, "valid-password", None]) is None


def test_pgp_secret_keys() -> None:
    secrets = {"private-key-name": PGP_PRIVATE_KEY, "password-name": "valid-password", "pub": PGP_PUBLIC_KEY}
    expr = ["decrypt-pgp", "$SECRET(private-key-name)", "$SECRET(password-name)",
            ["encrypt-pgp", "$SECRET(pub)", "secret message"]]
    assert ev_with_secrets(expr, secrets) == "secret message"


@pytest.mark.parametrize(
    "expr",
    [
        ["decrypt-pgp", PGP_PRIVATE_KEY, "wrong-password", "x"],
        ["decrypt-pgp", "not a key", "valid-password", "x"],
        ["decrypt-pgp", PGP_PRIVATE_KEY, 5, "x"],
        ["encrypt-pgp", "not a key", "x"],
        ["encrypt-pgp", 12, "x"],
    ],
)
def test_pgp_invalid_constant_keys(expr: list[Any]) -> None:
    with pytest.raises(DTLCompileError):
        compile_expression(expr)


def test_pgp_computed_wrong_password_gives_null() -> None:
    expr = ["decrypt-pgp", PGP_PRIVATE_KEY, "_S.pw", PGP_MESSAGE_FROM_GNUPG]
    assert ev(expr, {"pw": "valid-password"}) == "from gpg\n"
    assert ev(expr, {"pw": "nope"}) is None
