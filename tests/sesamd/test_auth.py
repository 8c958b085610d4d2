"""The auth core on real files: signing key, tokens, users, login throttling."""

from __future__ import annotations

import base64
import json
import stat
import threading
import time
from pathlib import Path

import jwt
import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric import rsa

from sesamd._auth import (
    ROLES,
    Authenticator,
    AuthError,
    Forbidden,
    LoginThrottle,
    Permission,
    Principal,
    Unauthenticated,
    UserStore,
)

CHEAP = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(tmp_path: Path, clock: Clock) -> Authenticator:
    return Authenticator(tmp_path / "data", clock=clock)


def key_of(tmp_path: Path) -> bytes:
    return (tmp_path / "data" / "auth" / "signing.key").read_bytes()


# -- roles and principals ------------------------------------------------------------------------------


def test_roles_table() -> None:
    assert ROLES["admin"] == frozenset(Permission)
    assert ROLES["developer"] == frozenset(Permission) - {Permission.ADMIN}
    assert ROLES["user"] == {Permission.READ_CONFIG, Permission.READ_DATA, Permission.WRITE_DATA,
                             Permission.RUN_PUMP_OPERATION, Permission.READ_PROXY}
    assert ROLES["guest"] == {Permission.READ_CONFIG}
    assert Permission.WRITE_CONFIG == "write_config"


def test_principal_require_and_may() -> None:
    guest = Principal("someone", "guest", ROLES["guest"])
    assert guest.may(Permission.READ_CONFIG) and not guest.may(Permission.WRITE_CONFIG)
    guest.require(Permission.READ_CONFIG)
    with pytest.raises(Forbidden) as info:
        guest.require(Permission.WRITE_CONFIG)
    assert info.value.status == 403
    assert isinstance(info.value, AuthError)
    assert str(info.value) == "role 'guest' lacks the permission 'write_config'"
    assert Unauthenticated("x").status == 401


# -- the signing key -----------------------------------------------------------------------------------


def test_key_file_made_with_private_modes(tmp_path: Path, auth: Authenticator) -> None:
    auth_dir = tmp_path / "data" / "auth"
    assert mode(auth_dir) == 0o700
    assert mode(auth_dir / "signing.key") == 0o600
    assert len(key_of(tmp_path)) >= 32
    assert [p.name for p in auth_dir.iterdir()] == ["signing.key"]  # no temporary file left


def test_key_is_kept_across_instances(tmp_path: Path, auth: Authenticator) -> None:
    token = auth.mint("developer")
    key = key_of(tmp_path)
    again = Authenticator(tmp_path / "data")
    assert key_of(tmp_path) == key
    assert again.verify(token).role == "developer"


# -- mint and verify -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", sorted(ROLES))
def test_mint_verify_round_trip(auth: Authenticator, role: str) -> None:
    principal = auth.verify(auth.mint(role, subject="a@example.com"))
    assert principal == Principal("a@example.com", role, ROLES[role])


def test_claims_and_header(tmp_path: Path, auth: Authenticator, clock: Clock) -> None:
    token = auth.mint("user", expires_days=2)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256" and header["kid"] == auth.key_id
    claims = jwt.decode(token, key_of(tmp_path), algorithms=["HS256"], options={"verify_exp": False})
    assert claims["sub"] == "sesamd" and claims["role"] == "user"
    assert claims["iat"] == int(clock.now) and claims["exp"] == int(clock.now) + 2 * 86400
    assert isinstance(claims["jti"], str) and claims["jti"] != jwt.decode(
        auth.mint("user"), key_of(tmp_path), algorithms=["HS256"])["jti"]
    assert "exp" not in jwt.decode(auth.mint("user"), key_of(tmp_path), algorithms=["HS256"])


def test_mint_refuses_unknown_role_and_bad_expiry(auth: Authenticator) -> None:
    with pytest.raises(ValueError, match=r"unknown role 'root' \(known roles: admin, developer, guest, user\)"):
        auth.mint("root")
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="positive number of days"):
            auth.mint("admin", expires_days=bad)


def test_expired_token(auth: Authenticator, clock: Clock) -> None:
    token = auth.mint("admin", expires_days=1)
    clock.now += 86400 - 1
    assert auth.verify(token).role == "admin"  # cached now
    clock.now += 1
    with pytest.raises(Unauthenticated, match=r"^the token has expired$"):
        auth.verify(token)
    fresh = Authenticator(auth._dir.parent, clock=clock)  # not cached there
    with pytest.raises(Unauthenticated, match=r"^the token has expired$"):
        fresh.verify(token)


def test_cache_checks_expiry_on_every_hit(auth: Authenticator, clock: Clock) -> None:
    token = auth.mint("guest", expires_days=1 / 86400)  # one second
    for _ in range(3):
        assert auth.verify(token).role == "guest"
    clock.now += 1
    with pytest.raises(Unauthenticated, match="expired"):
        auth.verify(token)


def test_token_from_another_data_dir(tmp_path: Path, auth: Authenticator) -> None:
    other = Authenticator(tmp_path / "other").mint("admin")
    with pytest.raises(Unauthenticated, match=r"^the token's signature is not valid \(was the key rotated\?\)$"):
        auth.verify(other)


def test_alg_none_refused(auth: Authenticator, clock: Clock) -> None:
    payload = {"sub": "x", "role": "admin", "iat": int(clock.now)}
    body = b64(json.dumps(payload).encode())
    token = b64(b'{"alg":"none","typ":"JWT"}') + "." + body + "."
    with pytest.raises(Unauthenticated, match="algorithm 'none' is not accepted"):
        auth.verify(token)
    # the same payload with an HS256 header and no signature
    token = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + body + "."
    with pytest.raises(Unauthenticated):
        auth.verify(token)


def test_other_algorithms_refused(tmp_path: Path, auth: Authenticator) -> None:
    claims = {"sub": "x", "role": "admin"}
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(Unauthenticated, match="algorithm 'RS256' is not accepted"):
        auth.verify(jwt.encode(claims, rsa_key, algorithm="RS256"))
    with pytest.raises(Unauthenticated, match="algorithm 'HS512' is not accepted"):
        auth.verify(jwt.encode(claims, key_of(tmp_path), algorithm="HS512"))


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "...", "x" * 9000, "eyJhbGciOiJIUzI1NiJ9.e30"])
def test_malformed_tokens(auth: Authenticator, token: str) -> None:
    with pytest.raises(Unauthenticated, match=r"^the token is malformed: "):
        auth.verify(token)


def test_claims_checked(tmp_path: Path, auth: Authenticator) -> None:
    key = key_of(tmp_path)

    def signed(claims: dict) -> str:
        return jwt.encode(claims, key, algorithm="HS256")

    with pytest.raises(Unauthenticated, match=r"^the token's role 'root' is unknown$"):
        auth.verify(signed({"sub": "x", "role": "root"}))
    with pytest.raises(Unauthenticated, match="no 'role' claim"):
        auth.verify(signed({"sub": "x"}))
    with pytest.raises(Unauthenticated, match="malformed"):
        auth.verify(signed({"role": "admin"}))
    with pytest.raises(Unauthenticated, match="'exp' claim must be a number"):
        auth.verify(signed({"sub": "x", "role": "admin", "exp": "tomorrow"}))
    assert auth.verify(signed({"sub": "x", "role": "admin"})).role == "admin"  # exp is optional


def test_authenticate_header(auth: Authenticator) -> None:
    token = auth.mint("developer")
    for header in (f"Bearer {token}", f"bearer {token}", f"  BEARER   {token}  "):
        assert auth.authenticate(header).role == "developer"
    for header in (None, "", "   "):
        with pytest.raises(Unauthenticated) as info:
            auth.authenticate(header)
        assert str(info.value) == ("missing bearer token: send 'Authorization: Bearer <token>' "
                                   "(make one with 'sesamd token --role ROLE')")
    with pytest.raises(Unauthenticated, match="scheme 'Basic' is not supported"):
        auth.authenticate("Basic dXNlcjpwYXNz")
    with pytest.raises(Unauthenticated, match="missing bearer token"):
        auth.authenticate("Bearer ")
    with pytest.raises(Unauthenticated, match="malformed"):
        auth.authenticate("Bearer nonsense")


# -- rotation ------------------------------------------------------------------------------------------


def test_rotate_key_in_this_process_and_another(tmp_path: Path, auth: Authenticator, clock: Clock) -> None:
    other = Authenticator(tmp_path / "data", clock=clock)  # a second process on the same data dir
    old = auth.mint("admin")
    assert other.verify(old).role == "admin"  # and now cached there
    old_kid = auth.key_id
    auth.rotate_key()
    assert auth.key_id != old_kid and mode(tmp_path / "data" / "auth" / "signing.key") == 0o600
    with pytest.raises(Unauthenticated, match="was the key rotated"):
        auth.verify(old)
    new = auth.mint("admin")
    assert auth.verify(new).role == "admin"
    clock.now += 0.5  # within the re-stat interval the other process still has the old key
    assert other.verify(old).role == "admin"
    clock.now += 0.5
    with pytest.raises(Unauthenticated, match="was the key rotated"):
        other.verify(old)
    assert other.verify(new).role == "admin"
    assert other.key_id == auth.key_id


def test_concurrent_verify_and_rotate(auth: Authenticator) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(200):
                token = auth.mint("user")
                try:
                    auth.verify(token)
                except Unauthenticated as exc:  # a rotation in between
                    assert "rotated" in str(exc)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(20):
        auth.rotate_key()
    for t in threads:
        t.join()
    assert not errors


def test_verify_is_fast_when_cached(auth: Authenticator) -> None:
    token = auth.mint("developer")
    auth.verify(token)
    start = time.perf_counter()
    for _ in range(10000):
        auth.verify(token)
    assert time.perf_counter() - start < 0.5


def test_cache_is_bounded(auth: Authenticator) -> None:
    for _ in range(1100):
        auth.verify(auth.mint("guest"))
    assert len(auth._cache) <= 1024


# -- users ---------------------------------------------------------------------------------------------


@pytest.fixture
def users(tmp_path: Path) -> UserStore:
    return UserStore(tmp_path / "data", hasher=CHEAP)


def test_users_add_check_list_remove(tmp_path: Path, users: UserStore) -> None:
    users.add("Ann@Example.com", "secret", "admin")
    users.add("bob@example.com", "hunter2")
    path = tmp_path / "data" / "auth" / "users.json"
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    listed = users.list()
    assert [(u["email"], u["role"]) for u in listed] == [("ann@example.com", "admin"),
                                                         ("bob@example.com", "developer")]
    assert all(set(u) == {"email", "role", "created"} for u in listed)
    assert "argon2" not in json.dumps(listed)
    assert "$argon2id$" in path.read_text()
    assert "secret" not in path.read_text()

    assert users.check("ann@example.com", "secret") == "admin"
    assert users.check("ANN@EXAMPLE.COM", "secret") == "admin"
    assert users.check("bob@example.com", "hunter2") == "developer"
    assert users.check("ann@example.com", "Secret") is None
    assert users.check("nobody@example.com", "secret") is None
    assert users.check("ann@example.com", "") is None

    users.add("ann@example.com", "changed", "guest")  # replaces password and role
    assert users.check("ann@example.com", "secret") is None
    assert users.check("ann@example.com", "changed") == "guest"
    assert [u["created"] for u in users.list()] == [u["created"] for u in listed]

    users.remove("ANN@example.com")
    assert [u["email"] for u in users.list()] == ["bob@example.com"]
    assert users.check("ann@example.com", "changed") is None
    with pytest.raises(KeyError, match=r"ann@example\.com"):
        users.remove("ann@example.com")
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_users_input_validated(users: UserStore) -> None:
    for email in ("no-at", "two@@example.com", "a@b@c", "sp ace@example.com", "@example.com", "a@"):
        with pytest.raises(ValueError, match="not an email address"):
            users.add(email, "pw")
    with pytest.raises(ValueError, match="unknown role 'root'"):
        users.add("a@example.com", "pw", "root")
    with pytest.raises(ValueError, match="password must not be empty"):
        users.add("a@example.com", "")
    assert users.list() == []


def test_second_store_sees_edits(tmp_path: Path, users: UserStore) -> None:
    other = UserStore(tmp_path / "data", hasher=CHEAP)  # the node while the CLI edits
    assert other.check("a@example.com", "pw") is None
    users.add("a@example.com", "pw", "user")
    assert other.check("a@example.com", "pw") == "user"
    users.add("a@example.com", "pw2", "user")
    assert other.check("a@example.com", "pw") is None
    assert other.check("a@example.com", "pw2") == "user"
    users.remove("a@example.com")
    assert other.check("a@example.com", "pw2") is None
    assert other.list() == []


def test_check_is_thread_safe(users: UserStore) -> None:
    users.add("a@example.com", "pw", "user")
    results: list[str | None] = []
    threads = [threading.Thread(target=lambda i=i: results.append(users.check("a@example.com", "pw" if i % 2
                                                                                else "bad")))
               for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=str) == [None] * 3 + ["user"] * 3


def test_corrupt_users_file(tmp_path: Path, users: UserStore) -> None:
    (tmp_path / "data" / "auth" / "users.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid users file"):
        users.list()


# -- login throttle ------------------------------------------------------------------------------------


def test_throttle_delays_and_reset() -> None:
    t = LoginThrottle(free_failures=3, base_delay=0.5, max_delay=4.0)
    delays = []
    for i in range(8):
        delays.append(t.delay("a@example.com", 100.0 + i))
        t.failed("a@example.com", 100.0 + i)
    assert delays == [0, 0, 0, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert t.delay("other", 110.0) == 0
    t.succeeded("a@example.com")
    assert t.delay("a@example.com", 110.0) == 0
    t.failed("a@example.com", 110.0)
    assert t.delay("a@example.com", 110.0) == 0


def test_throttle_forgets() -> None:
    t = LoginThrottle(free_failures=1, base_delay=1.0, forget_after=900.0)
    t.failed("k", 0.0)
    t.failed("k", 10.0)
    assert t.delay("k", 10.0) == 2.0
    assert t.delay("k", 909.0) == 2.0
    assert t.delay("k", 910.0) == 0
    t.failed("k", 2000.0)
    assert t.delay("k", 2000.0) == 1.0  # a fresh count
    t.failed("k", 3000.0)  # long after: starts again at one failure
    assert t.delay("k", 3000.0) == 1.0


def test_throttle_bounded_keys() -> None:
    t = LoginThrottle(free_failures=0, max_keys=100)
    for i in range(1000):
        t.failed(f"10.0.0.{i}", float(i))
    assert len(t) <= 100
    assert t.delay("10.0.0.999", 999.0) > 0  # the most recent are kept
    assert t.delay("10.0.0.0", 999.0) == 0
    t2 = LoginThrottle(forget_after=10.0)
    for i in range(50):
        t2.failed(f"k{i}", float(i))
    assert len(t2) <= 11  # expired keys are dropped as new failures come in
