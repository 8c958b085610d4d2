"""Encryption functions (dtl-spec 6.17, all T3): ``encrypt``/``decrypt`` (Fernet with a key derived from a
password), ``encrypt-pki``/``decrypt-pki`` (RSA with OAEP, MGF1 and SHA-1) and ``encrypt-pgp``/``decrypt-pgp``
(OpenPGP, ASCII armoured).

The libraries are imported on first use, so DTL works without them: ``cryptography`` for Fernet and RSA,
``pysequoia`` (Sequoia-PGP) for OpenPGP. Key and password arguments may be ``"$SECRET(name)"``; constant ones
are resolved at compile time through the compiler's ``secrets`` mapping (when the compiler has one).
Keys are parsed once per call site when they are constants. Values that cannot be decrypted are ignored.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from ._context import Ctx, Evaluator
from ._errors import DTLRuntimeError
from ._registry import IGNORE, Call, apply_elementwise, expression, is_constant

__all__ = ["fernet_key"]

_SECRET_RE = re.compile(r"\$SECRET\(([^)]*)\)\Z")
_FERNET_SALT = b"sesamd-dtl-encrypt"
_FERNET_ITERATIONS = 100_000


class CryptoArgumentError(ValueError):
    """A key, password or passphrase argument that cannot be used."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _text_arg(value: Any, what: str) -> str:
    if type(value) is not str:
        raise CryptoArgumentError(f"the {what} must be a string")
    return value


def _resolve_secret(call: Call, value: Any, index: int) -> Any:
    """Replace a constant ``"$SECRET(name)"`` with the secret's value (compile error if it is unknown)."""
    if type(value) is not str:
        return value
    match = _SECRET_RE.match(value)
    if match is None:
        return value
    secrets: Mapping[str, Any] | None = getattr(call.compiler, "secrets", None)
    name = match.group(1)
    if secrets is None or name not in secrets:
        raise call.error(f"unknown secret {name!r}", index)
    return secrets[name]


def _keyed(call: Call, factory: Callable[..., Callable[[Any], Any]]) -> Evaluator:
    """Compile ``[name, KEY..., VALUES]``: ``factory(*keys)`` builds the element function.

    With constant keys the factory runs once at compile time (an unusable key is a compile error); with
    computed keys it runs per evaluation and an unusable key gives null.
    """
    evaluators = call.compile_all()
    values = evaluators[-1]
    params = evaluators[:-1]
    if all(is_constant(p) for p in params):
        keys = [_resolve_secret(call, p.dtl_constant, i) for i, p in enumerate(params)]  # type: ignore[attr-defined]
        try:
            element = factory(*keys)
        except CryptoArgumentError as exc:
            raise call.error(str(exc)) from None
        except ImportError as exc:
            raise call.error(f"needs the Python package {exc.name!r}, which is not installed") from None
        return lambda c: apply_elementwise(element, values(c))

    def evaluate(c: Ctx) -> Any:
        try:
            element = factory(*[p(c) for p in params])
        except CryptoArgumentError:
            return None
        except ImportError as exc:
            raise DTLRuntimeError(f'"{call.name}" needs the Python package {exc.name!r}, which is not installed') \
                from None
        return apply_elementwise(element, values(c))

    return evaluate


def _plain_bytes(value: Any) -> bytes | None:
    if type(value) is str:
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    return None


def _as_text(data: bytes) -> str | bytes:
    """Decrypted data as a string (UTF-8), or the bytes themselves when they are not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


# ---------------------------------------------------------------------------------------------------
# encrypt / decrypt (Fernet)
# ---------------------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def fernet_key(password: str) -> bytes:
    """The Fernet key of a password: PBKDF2-HMAC-SHA256 with a fixed salt, url-safe base64 encoded."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=_FERNET_SALT, iterations=_FERNET_ITERATIONS)
    return base64.urlsafe_b64encode(kdf.derive(password.encode("utf-8")))


@expression("encrypt", args=2)
def _encrypt(call: Call) -> Evaluator:
    def factory(password: Any) -> Callable[[Any], Any]:
        from cryptography.fernet import Fernet

        fernet = Fernet(fernet_key(_text_arg(password, "key")))

        def encrypt(value: Any) -> Any:
            data = _plain_bytes(value)
            return IGNORE if data is None else fernet.encrypt(data)

        return encrypt

    return _keyed(call, factory)


@expression("decrypt", args=2)
def _decrypt(call: Call) -> Evaluator:
    def factory(password: Any) -> Callable[[Any], Any]:
        from cryptography.fernet import Fernet, InvalidToken

        fernet = Fernet(fernet_key(_text_arg(password, "key")))

        def decrypt(value: Any) -> Any:
            if not isinstance(value, bytes | str):
                return IGNORE
            try:
                return _as_text(fernet.decrypt(value))
            except (InvalidToken, ValueError, TypeError):
                return IGNORE

        return decrypt

    return _keyed(call, factory)


# ---------------------------------------------------------------------------------------------------
# encrypt-pki / decrypt-pki (RSA, OAEP with MGF1 and SHA-1)
# ---------------------------------------------------------------------------------------------------


def _oaep() -> Any:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


@lru_cache(maxsize=32)
def _rsa_public_key(pem: str) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_public_key(pem.encode("utf-8"))
    except (ValueError, TypeError) as exc:
        raise CryptoArgumentError(f"invalid PEM public key: {_first_line(exc)}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise CryptoArgumentError("the public key must be an RSA key")
    return key


@lru_cache(maxsize=32)
def _rsa_private_key(pem: str) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError) as exc:
        raise CryptoArgumentError(f"invalid PEM private key: {_first_line(exc)}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CryptoArgumentError("the private key must be an RSA key")
    return key


@expression("encrypt-pki", args=2)
def _encrypt_pki(call: Call) -> Evaluator:
    def factory(pem: Any) -> Callable[[Any], Any]:
        key = _rsa_public_key(_text_arg(pem, "public key"))
        padding = _oaep()

        def encrypt(value: Any) -> Any:
            data = _plain_bytes(value)
            if data is None:
                return IGNORE
            try:
                return key.encrypt(data, padding)
            except ValueError as exc:
                raise DTLRuntimeError(f'"encrypt-pki": the value is too long for the key ({len(data)} bytes): '
                                      f"{_first_line(exc)}") from None

        return encrypt

    return _keyed(call, factory)


@expression("decrypt-pki", args=2)
def _decrypt_pki(call: Call) -> Evaluator:
    def factory(pem: Any) -> Callable[[Any], Any]:
        key = _rsa_private_key(_text_arg(pem, "private key"))
        padding = _oaep()

        def decrypt(value: Any) -> Any:
            if not isinstance(value, bytes):
                return IGNORE
            try:
                return _as_text(key.decrypt(value, padding))
            except ValueError:
                return IGNORE

        return decrypt

    return _keyed(call, factory)


# ---------------------------------------------------------------------------------------------------
# encrypt-pgp / decrypt-pgp (OpenPGP via Sequoia)
# ---------------------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _pgp_certificate(armored: str) -> Any:
    import pysequoia

    try:
        return pysequoia.Cert.from_bytes(armored.encode("utf-8"))
    except Exception as exc:  # pysequoia raises plain RuntimeError/ValueError for bad input
        raise CryptoArgumentError(f"invalid PGP public key: {_first_line(exc)}") from None


def _pgp_decryptor(armored: str, passphrase: str) -> Any:
    import pysequoia

    try:
        key = pysequoia.Tsk.from_bytes(armored.encode("utf-8"))
    except Exception as exc:
        raise CryptoArgumentError(f"invalid PGP private key: {_first_line(exc)}") from None
    try:
        return key.decryptor(passphrase or None)
    except Exception as exc:
        raise CryptoArgumentError(f"cannot unlock the PGP private key: {_first_line(exc)}") from None


@expression("encrypt-pgp", args=2)
def _encrypt_pgp(call: Call) -> Evaluator:
    def factory(armored: Any) -> Callable[[Any], Any]:
        import pysequoia

        certificate = _pgp_certificate(_text_arg(armored, "public key"))

        def encrypt(value: Any) -> Any:
            data = _plain_bytes(value)
            if data is None:
                return IGNORE
            message: bytes = pysequoia.encrypt(data, recipients=[certificate])
            return message.decode("ascii")

        return encrypt

    return _keyed(call, factory)


@expression("decrypt-pgp", args=3)
def _decrypt_pgp(call: Call) -> Evaluator:
    def factory(armored: Any, passphrase: Any) -> Callable[[Any], Any]:
        import pysequoia

        if passphrase is not None:
            passphrase = _text_arg(passphrase, "passphrase")
        decryptor = _pgp_decryptor(_text_arg(armored, "private key"), passphrase)

        def decrypt(value: Any) -> Any:
            if type(value) is str:
                value = value.encode("utf-8")
            elif not isinstance(value, bytes):
                return IGNORE
            try:
                return _as_text(pysequoia.decrypt(value, decryptor=decryptor).bytes)
            except Exception:  # not a message for this key
                return IGNORE

        return decrypt

    return _keyed(call, factory)

