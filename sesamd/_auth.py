"""The node's authentication core: roles and permissions, its own JWTs, users for ``POST /api/jwt``, login throttling.

No HTTP here: the API turns an ``Authorization`` header into a :class:`Principal` with
:meth:`Authenticator.authenticate` and asks it for a :class:`Permission`; an :class:`AuthError` carries the
HTTP status (401 or 403) and a message fit to show the caller.

Tokens are HS256 JWTs signed with a key in ``DATA_DIR/auth/signing.key`` (mode 0600, made on first use).
Claims: ``sub``, ``role``, ``iat``, ``exp`` (optional), ``jti``; the header's ``kid`` names the key.
``sesamd token --rotate-key`` writes a new key, which invalidates every earlier token; a running node
notices within a second. Users (email, role, argon2id hash) live in ``DATA_DIR/auth/users.json`` (0600).
Only the files under ``DATA_DIR/auth`` are touched, so the command line can edit them while a node runs.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import math
import os
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jwt
import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "ROLES",
    "AuthError",
    "Authenticator",
    "Forbidden",
    "LoginThrottle",
    "Permission",
    "Principal",
    "Unauthenticated",
    "UserStore",
]

ALGORITHM = "HS256"
KEY_FILE = "signing.key"
USERS_FILE = "users.json"
KEY_BYTES = 64
MIN_KEY_BYTES = 32
MAX_TOKEN_LENGTH = 8192
CACHE_SIZE = 1024
RESTAT_SECONDS = 1.0


class Permission(enum.StrEnum):
    READ_CONFIG = "read_config"
    WRITE_CONFIG = "write_config"
    READ_DATA = "read_data"
    WRITE_DATA = "write_data"
    RUN_PUMP_OPERATION = "run_pump_operation"
    READ_PROXY = "read_proxy"  # GET through /api/systems/{id}/proxy (node-spec 10.4)
    WRITE_PROXY = "write_proxy"  # POST, PUT, PATCH, DELETE through it
    ADMIN = "admin"


ROLES: Mapping[str, frozenset[Permission]] = MappingProxyType({
    "admin": frozenset(Permission),
    "developer": frozenset(Permission) - {Permission.ADMIN},
    "user": frozenset({Permission.READ_CONFIG, Permission.READ_DATA, Permission.WRITE_DATA,
                       Permission.RUN_PUMP_OPERATION, Permission.READ_PROXY}),
    "guest": frozenset({Permission.READ_CONFIG}),
})


def _known_roles() -> str:
    return ", ".join(sorted(ROLES))


def _check_role(role: object) -> str:
    if not isinstance(role, str) or role not in ROLES:
        raise ValueError(f"unknown role {role!r} (known roles: {_known_roles()})")
    return role


class AuthError(Exception):
    """Base of the auth errors; ``status`` is the HTTP status, ``str(exc)`` a message for the caller."""

    status: int = 401


class Unauthenticated(AuthError):
    """No usable credentials: missing, malformed, expired, badly signed or revoked token, unknown role."""

    status = 401


class Forbidden(AuthError):
    """Authenticated, but the role lacks the permission."""

    status = 403


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the token's subject and role, and the role's permissions."""

    subject: str
    role: str
    permissions: frozenset[Permission]

    def require(self, permission: Permission) -> None:
        """Raise :class:`Forbidden` unless the role has ``permission``."""
        if permission not in self.permissions:
            raise Forbidden(f"role {self.role!r} lacks the permission {str(permission)!r}")

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions


# -- files under DATA_DIR/auth --------------------------------------------------------------------------


def _auth_dir(data_dir: str | Path) -> Path:
    """``DATA_DIR/auth``, created with mode 0700 when missing."""
    path = Path(data_dir) / "auth"
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    return path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes, *, replace: bool = True) -> bool:
    """Write ``path`` (mode 0600) through a fsynced temporary file; ``replace=False`` keeps an existing file.

    Returns whether ``path`` now holds ``data``.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails when another process made the file first
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
        _fsync_dir(path.parent)
        return True
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _stat_id(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created 0600), for read-modify-write across processes."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- tokens --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cached:
    principal: Principal
    exp: float | None
    nbf: float | None


def _number_claim(payload: dict[str, Any], name: str) -> float | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Unauthenticated(f"the token is malformed: the {name!r} claim must be a number")
    return float(value)


class Authenticator:
    """Signs and verifies the node's tokens (HS256 with a key kept in DATA_DIR/auth/signing.key, mode 0600).

    Thread-safe. Verified tokens are cached (their expiry is still checked on every use); the key file is
    re-stat'ed at most once a second, so a key rotated by another process takes effect within about 1 s.
    """

    def __init__(self, data_dir: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self._dir = _auth_dir(data_dir)
        self._path = self._dir / KEY_FILE
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], _Cached] = {}
        if not self._path.exists():
            _write_atomic(self._path, secrets.token_bytes(KEY_BYTES), replace=False)
        self._current = (b"", "")  # (key, key id), swapped as one
        self._stat: tuple[int, int, int, int] | None = None
        self._load_key()
        self._checked = clock()

    @property
    def key_id(self) -> str:
        """The current key's id (the ``kid`` header of the tokens it signs)."""
        self._maybe_reload()
        return self._current[1]

    def _load_key(self) -> None:
        """Read the key file (caller holds the lock or is ``__init__``); drops the cache."""
        stat = _stat_id(self._path)
        key = self._path.read_bytes()
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"{self._path}: the signing key is shorter than {MIN_KEY_BYTES} bytes")
        self._current, self._stat = (key, hashlib.sha256(key).hexdigest()[:16]), stat
        self._cache.clear()

    def _maybe_reload(self) -> None:
        now = self._clock()
        if now - self._checked < RESTAT_SECONDS:
            return
        with self._lock:
            if now - self._checked < RESTAT_SECONDS:
                return
            self._checked = now
            stat = _stat_id(self._path)
            if stat is not None and stat != self._stat:  # a missing file keeps the key in memory
                self._load_key()

    def rotate_key(self) -> None:
        """Write a new key: every earlier token becomes invalid (here at once, in other processes within ~1 s)."""
        with self._lock:
            _write_atomic(self._path, secrets.token_bytes(KEY_BYTES))
            self._load_key()
            self._checked = self._clock()

    def mint(self, role: str, *, subject: str = "sesamd", expires_days: float | None = None) -> str:
        """A signed token for ``role``; without ``expires_days`` it does not expire."""
        _check_role(role)
        if not isinstance(subject, str) or not subject:
            raise ValueError("the token's subject must be a non-empty string")
        now = int(self._clock())
        claims: dict[str, Any] = {"sub": subject, "role": role, "iat": now}
        if expires_days is not None:
            if isinstance(expires_days, bool) or not math.isfinite(expires_days) or expires_days <= 0:
                raise ValueError(f"the expiry must be a positive number of days, not {expires_days!r}")
            claims["exp"] = now + max(1, round(expires_days * 86400))
        claims["jti"] = secrets.token_urlsafe(16)
        self._maybe_reload()
        key, kid = self._current
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; :class:`Unauthenticated` with a clear message otherwise."""
        if not isinstance(token, str) or not token:
            raise Unauthenticated("the token is malformed: it is empty")
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated(f"the token is malformed: longer than {MAX_TOKEN_LENGTH} characters")
        self._maybe_reload()
        key, kid = self._current
        cached = self._cache.get((token, kid))
        if cached is None:
            cached = self._decode(token, key)
            with self._lock:
                if self._current[1] == kid:  # not rotated meanwhile
                    if len(self._cache) >= CACHE_SIZE:
                        del self._cache[next(iter(self._cache))]
                    self._cache[(token, kid)] = cached
        now = self._clock()
        if cached.exp is not None and now >= cached.exp:
            raise Unauthenticated("the token has expired")
        if cached.nbf is not None and now < cached.nbf:
            raise Unauthenticated("the token is not valid yet (its 'nbf' is in the future)")
        return cached.principal

    def _decode(self, token: str, key: bytes) -> _Cached:
        try:
            payload = jwt.decode(
                token, key, algorithms=[ALGORITHM],
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "require": []},
            )
        except jwt.InvalidAlgorithmError:
            raise Unauthenticated(f"the token's algorithm {_unverified_alg(token)!r} is not accepted "
                                  f"(only {ALGORITHM})") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the token's signature is not valid (was the key rotated?)") from None
        except jwt.DecodeError as exc:
            raise Unauthenticated(f"the token is malformed: {exc}") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the token is not valid: {exc}") from None
        role = payload.get("role")
        if role is None:
            raise Unauthenticated("the token is malformed: it has no 'role' claim")
        if not isinstance(role, str) or role not in ROLES:
            raise Unauthenticated(f"the token's role {role!r} is unknown")
        subject = payload.get("sub")
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated("the token is malformed: it has no 'sub' claim")
        exp, nbf = _number_claim(payload, "exp"), _number_claim(payload, "nbf")
        return _Cached(Principal(subject, role, ROLES[role]), exp, nbf)

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization`` header value (``Bearer <jwt>``, scheme case-insensitive)."""
        parts = (authorization or "").strip().split(None, 1)
        if not parts:
            raise Unauthenticated("missing bearer token: send 'Authorization: Bearer <token>' "
                                  "(make one with 'sesamd token --role ROLE')")
        scheme = parts[0]
        if scheme.lower() != "bearer":
            raise Unauthenticated(f"the Authorization scheme {scheme!r} is not supported: "
                                  "send 'Authorization: Bearer <token>'")
        if len(parts) < 2 or not parts[1].strip():
            raise Unauthenticated("missing bearer token: the Authorization header has nothing after 'Bearer'")
        return self.verify(parts[1].strip())


def _unverified_alg(token: str) -> str:
    try:
        return str(jwt.get_unverified_header(token).get("alg"))
    except jwt.PyJWTError:
        return "?"


# -- users ---------------------------------------------------------------------------------------------


def _normal_email(email: object) -> str:
    if not isinstance(email, str):
        raise ValueError(f"not an email address: {email!r}")
    local, at, domain = email.partition("@")
    if (not at or not local or not domain or "@" in domain or any(c.isspace() for c in email)
            or len(email) > 254):
        raise ValueError(f"not an email address: {email!r} (expected one '@' and no whitespace)")
    return email.lower()


class UserStore:
    """Users for POST /api/jwt (the guide's `sesam login`): DATA_DIR/auth/users.json (0600, atomic rewrite),
    argon2id hashes via argon2-cffi's PasswordHasher.

    Thread-safe; :meth:`check` re-reads the file when another process (``sesamd user ...``) changed it.
    Emails are stored lower-cased and compared case-insensitively.
    """

    def __init__(self, data_dir: str | Path, *, hasher: PasswordHasher | None = None) -> None:
        self._dir = _auth_dir(data_dir)
        self._path = self._dir / USERS_FILE
        self._lock_path = self._dir / ".users.lock"
        self._hasher = hasher or PasswordHasher()
        self._lock = threading.Lock()
        self._users: dict[str, dict[str, str]] = {}
        self._stat: tuple[int, int, int, int] | None = None
        self._dummy_hash: str | None = None

    def _read(self) -> dict[str, dict[str, str]]:
        """The users in the file (caller holds ``_lock``); refreshes the in-memory copy when the file changed."""
        stat = _stat_id(self._path)
        if stat != self._stat:
            users: dict[str, dict[str, str]] = {}
            if stat is not None:
                try:
                    doc = orjson.loads(self._path.read_bytes())
                    for user in doc["users"]:
                        users[_normal_email(user["email"])] = {
                            "email": _normal_email(user["email"]), "role": str(user["role"]),
                            "created": str(user["created"]), "hash": str(user["hash"]),
                        }
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    raise ValueError(f"{self._path}: not a valid users file ({exc})") from None
            self._users, self._stat = users, stat
        return self._users

    def _write(self, users: dict[str, dict[str, str]]) -> None:
        doc = {"users": [users[email] for email in sorted(users)]}
        _write_atomic(self._path, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        self._users, self._stat = users, _stat_id(self._path)

    def add(self, email: str, password: str, role: str = "developer") -> None:
        """Add a user, or replace an existing user's password and role."""
        email = _normal_email(email)
        _check_role(role)
        if not isinstance(password, str) or not password:
            raise ValueError("the password must not be empty")
        hashed = self._hasher.hash(password)
        with self._lock, _file_lock(self._lock_path):
            users = dict(self._read())
            created = users.get(email, {}).get("created") or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            users[email] = {"email": email, "role": role, "created": created, "hash": hashed}
            self._write(users)

    def remove(self, email: str) -> None:
        """Remove a user; :class:`KeyError` if there is none with that email."""
        key = email.lower() if isinstance(email, str) else email
        with self._lock, _file_lock(self._lock_path):
            users = dict(self._read())
            if key not in users:
                raise KeyError(f"no user with the email {email!r}")
            del users[key]
            self._write(users)

    def list(self) -> list[dict[str, str]]:
        """``[{"email", "role", "created"}]`` sorted by email (never the hash)."""
        with self._lock:
            users = self._read()
        return [{"email": u["email"], "role": u["role"], "created": u["created"]}
                for _, u in sorted(users.items())]

    def check(self, email: str, password: str) -> str | None:
        """The user's role when the password is right, else None. Slow (argon2): call it in a worker thread."""
        with self._lock:
            users = self._read()
            if self._dummy_hash is None:  # made on the first check, whether the email is known or not
                self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
            dummy = self._dummy_hash
        user = users.get(email.lower()) if isinstance(email, str) else None
        if not isinstance(password, str):
            password = ""
        try:
            self._hasher.verify(user["hash"] if user else dummy, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None or user["role"] not in ROLES:
            return None
        return user["role"]


# -- login throttling ----------------------------------------------------------------------------------


class LoginThrottle:
    """Sans-IO: slows repeated failed logins per key (email and remote address).

    After ``free_failures`` failures in a row each attempt waits ``base_delay`` seconds, doubling per further
    failure up to ``max_delay``; a success resets the key, and a key with no failure for ``forget_after``
    seconds is forgotten. At most ``max_keys`` keys are kept (the least recently failed go first).
    """

    def __init__(self, *, free_failures: int = 3, base_delay: float = 0.5, max_delay: float = 30.0,
                 forget_after: float = 900.0, max_keys: int = 10000) -> None:
        if free_failures < 0 or base_delay < 0 or max_delay < 0 or forget_after <= 0 or max_keys < 1:
            raise ValueError("LoginThrottle: negative delays, a non-positive forget_after or max_keys < 1")
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.max_keys = max_keys
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (count, last failure)

    def __len__(self) -> int:
        return len(self._failures)

    def delay(self, key: str, now: float) -> float:
        """Seconds to wait before answering this attempt."""
        entry = self._failures.get(key)
        if entry is None:
            return 0.0
        count, last = entry
        if now - last >= self.forget_after:
            del self._failures[key]
            return 0.0
        if count < self.free_failures:
            return 0.0
        return min(self.max_delay, self.base_delay * 2.0 ** min(count - self.free_failures, 64))

    def failed(self, key: str, now: float) -> None:
        """Record a failed attempt."""
        count, last = self._failures.pop(key, (0, now))
        if now - last >= self.forget_after:
            count = 0
        while self._failures:  # the oldest failures come first
            oldest = next(iter(self._failures))
            if now - self._failures[oldest][1] < self.forget_after and len(self._failures) < self.max_keys:
                break
            del self._failures[oldest]
        self._failures[key] = (count + 1, now)

    def succeeded(self, key: str) -> None:
        """Record a successful login: the key starts afresh."""
        self._failures.pop(key, None)
