"""Systems: config specs, the URL system's client (mocked and against a real local server), the SQL systems
against the local PostgreSQL and MariaDB, and the SystemActor's life cycle and limiter."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy
import trio

from actors import Reload, RestartPolicy, Supervisor, SystemActor
from actors.components import ConfigError, System, build_system, registered
from actors.components.system_url import UrlSystem
from actors.testing import Answer, WebRequest, WebServer

POSTGRES = {"_id": "pg", "type": "system:postgresql", "host": "127.0.0.1", "database": "test",
            "username": "postgres", "pool_size": 2}
MARIADB = {"_id": "maria", "type": "system:mysql", "host": "127.0.0.1", "database": "test", "username": "root",
           "password": ""}


def url_system(**config: Any) -> UrlSystem:
    system = build_system({"_id": "web", "type": "system:url", **config})
    assert isinstance(system, UrlSystem)
    return system


# -- specs ----------------------------------------------------------------------------------------------


def test_system_types_are_registered() -> None:
    types = {spec.type for spec in registered("system")}
    assert {"system:url", "system:postgresql", "system:mysql", "system:sqlite"} <= types
    assert all(spec.kind == "system" for spec in registered("system"))


@pytest.mark.parametrize(("config", "where", "text"), [
    ({"type": "system:db2", "url_pattern": "http://h/%s"}, "$['type']", "unknown or unsupported system type"),
    ({"type": "system:url"}, "$", "one of 'url_pattern' and 'base_url' is required"),
    ({"type": "system:url", "url_pattern": "ftp://h/%s"}, "$['url_pattern']", "absolute http or https URL"),
    ({"type": "system:url", "base_url": "not a url"}, "$['base_url']", "absolute http or https URL"),
    ({"type": "system:url", "url_pattern": "http://h", "username": "u"}, "$", "'password' is required"),
    ({"type": "system:url", "url_pattern": "http://h", "authentication": "basic"}, "$", "needs 'username'"),
    ({"type": "system:url", "url_pattern": "http://h", "authentication": "jwt"}, "$", "'jwt_token' is a required"),
    ({"type": "system:url", "url_pattern": "http://h", "authentication": "kerberos"}, "$['authentication']", ""),
    ({"type": "system:url", "url_pattern": "http://h", "headers": {"X-A": 1}}, "$['headers']['X-A']", "string"),
    ({"type": "system:url", "url_pattern": "http://h", "connect_timeout": "soon"}, "$['connect_timeout']", ""),
    ({"type": "system:url", "url_pattern": "http://h", "verify_ssl": True, "custom_ca_pem_chain": "junk"},
     "$['custom_ca_pem_chain']", "not a valid PEM"),
    ({"type": "system:url", "url_pattern": "http://h", "proxies": {"https": "socks5://p:1080"}},
     "$['proxies']['https']", "socks"),
    ({"type": "system:url", "url_pattern": "http://h", "retry_strategy": {"5xx": {}}}, "$['retry_strategy']",
     "does not match"),
    ({"type": "system:url", "url_pattern": "http://h", "retry_strategy": {"429": {"max_read_retries": -1}}},
     "$['retry_strategy']['429']['max_read_retries']", ""),
    ({"type": "system:url", "url_pattern": "http://h", "oauth2": {"client_id": "c", "nope": 1}}, "$['oauth2']",
     "nope"),
    ({"type": "system:url", "url_pattern": "http://h", "worker_threads": 0}, "$['worker_threads']", ""),
    ({"type": "system:postgresql", "host": "h"}, "$", "'database' is a required property"),
    ({"type": "system:postgresql", "host": "h", "database": "d", "port": "5432"}, "$['port']", "integer"),
    ({"type": "system:postgresql", "host": "h", "database": "d", "sslmode": "required"}, "$['sslmode']", ""),
    ({"type": "system:mysql", "host": "h", "database": "d", "sslmode": "prefer"}, "$['sslmode']", ""),
    ({"type": "system:mysql", "host": "h", "database": "d", "timezone": "Mars/Olympus"}, "$['timezone']",
     "IANA"),
    ({"type": "system:mysql", "host": "h", "database": "d", "pool_size": 0}, "$['pool_size']", ""),
    ({"type": "system:sqlite"}, "$", "'database' is a required property"),
])
def test_config_errors_name_the_path(config: dict[str, Any], where: str, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_system({"_id": "s", **config})
    assert caught.value.where == where
    assert text in caught.value.detail


def test_retry_strategy_write_error_keys_are_listed_as_unsupported() -> None:
    system = url_system(url_pattern="https://h/%s", retry_strategy={
        "default": {"max_retries_per_entity": 2, "batch_retries": 1}, "500": {"max_consecutive_write_errors": 3}})
    assert system.status()["unsupported"] == ["retry_strategy:max_consecutive_write_errors",
                                              "retry_strategy:max_retries_per_entity"]


def test_valid_configs_including_later_tier_properties() -> None:
    system = url_system(url_pattern="https://h/%s", verify_ssl=True, connect_timeout="~f2.5", read_timeout=30,
                        proxies={"https": "http://proxy:3128"}, ignore_invalid_content_length_response_header=True,
                        oauth2={"client_id": "c", "client_secret": "s", "token_url": "https://h/t", "scope": ["a"]},
                        tripletex={"consumer_token": "c", "employee_token": "e", "ttl": 48},
                        retry_strategy={"429": {"max_read_retries": 3, "read_retry_delay": 5},
                                        "500,502-504": {"batch_retries": 1}, "default": {}},
                        name="Web", description=["a", "b"], metadata={"$config-group": "x"}, worker_threads=3)
    assert system.timeout.connect == 2.5 and system.timeout.read == 30
    assert system.limits.max_connections == 3 and system.worker_threads == 3
    assert system.proxies == {"https://": "http://proxy:3128"}
    assert system.status()["unsupported"] == ["ignore_invalid_content_length_response_header", "oauth2",
                                              "tripletex"]
    short = build_system({"_id": "s", "type": "url", "base_url": "http://h/"})  # short form of system:url
    assert short.config["type"] == "system:url" and short.worker_threads == 10
    sql = build_system({"_id": "s", "type": "system:postgresql", "host": "h", "database": "d",
                        "timezone": "Europe/Oslo", "sslmode": "require", "pool_recycle": -1, "pool_timeout": "~f0.5"})
    assert str(sql.status()["timezone"]) == "Europe/Oslo"
    assert sql.connect_args()["sslmode"] == "require"


# -- URL system -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("config", "relative", "url"), [
    ({"url_pattern": "http://h:8080/api/%s/items"}, "people", "http://h:8080/api/people/items"),
    ({"url_pattern": "http://h/api/"}, "people?since=3", "http://h/api/people?since=3"),
    ({"url_pattern": "http://h/api"}, "", "http://h/api"),
    ({"base_url": "http://h/api/"}, "people", "http://h/api/people"),
    ({"base_url": "http://h/api"}, "people", "http://h/people"),  # urljoin: mind the trailing slash
    ({"base_url": "http://h/api/"}, "/root", "http://h/root"),
    ({"url_pattern": "http://h/%s", "base_url": "http://other/"}, "x", "http://h/x"),  # url_pattern wins
])
def test_url_rules(config: dict[str, Any], relative: str, url: str) -> None:
    assert url_system(**config).url(relative) == url


async def mocked(system: UrlSystem, handler: Any) -> list[httpx.Request]:
    """Open ``system`` on a MockTransport, GET two URLs, close it; returns the requests the server saw."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(httpx.Request(request.method, request.url, headers=request.headers.copy()))  # as sent now
        return handler(request)

    system.transport = httpx.MockTransport(record)
    await system.open()
    try:
        assert system.client is not None
        for relative in ("a", "b"):
            response = system.client.get(system.url(relative))
            assert response.status_code == 200
    finally:
        await system.close()
    assert system.client is None and not system.is_open
    return seen


async def test_client_sends_default_headers_and_basic_auth() -> None:
    system = url_system(url_pattern="http://api.test/v1/%s", headers={"X-Api-Key": "k1", "Accept": "text/csv"},
                        authentication="basic", username="ann", password="pw")
    seen = await mocked(system, lambda request: httpx.Response(200))
    assert [str(r.url) for r in seen] == ["http://api.test/v1/a", "http://api.test/v1/b"]
    for request in seen:
        assert request.headers["X-Api-Key"] == "k1" and request.headers["Accept"] == "text/csv"
        assert request.headers["Authorization"] == httpx.BasicAuth("ann", "pw")._auth_header
    assert system.status()["authentication"] == "basic"


async def test_credentials_without_authentication_are_not_sent() -> None:
    seen = await mocked(url_system(url_pattern="http://api.test/%s", username="ann", password="pw"),
                        lambda request: httpx.Response(200))
    assert all("Authorization" not in r.headers for r in seen)


async def test_client_answers_a_digest_challenge() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if not request.headers.get("Authorization", "").startswith("Digest "):
            return httpx.Response(401, headers={"WWW-Authenticate": 'Digest realm="r", nonce="n1", qop="auth"'})
        return httpx.Response(200)

    seen = await mocked(url_system(url_pattern="http://api.test/%s", authentication="digest", username="ann",
                                   password="pw"), handler)
    answered = [r for r in seen if "Authorization" in r.headers]
    assert len(answered) == 2
    assert all('username="ann"' in r.headers["Authorization"] and 'realm="r"' in r.headers["Authorization"]
               for r in answered)


async def test_jwt_overrides_the_authorization_header() -> None:
    system = url_system(url_pattern="http://api.test/%s", authentication="jwt", jwt_token="eyJ.abc.def",
                        headers={"authorization": "Basic old", "X-Other": "1"})
    seen = await mocked(system, lambda request: httpx.Response(200))
    assert all(r.headers["Authorization"] == "Bearer eyJ.abc.def" and r.headers["X-Other"] == "1" for r in seen)
    assert all(len(r.headers.get_list("Authorization")) == 1 for r in seen)


class Concurrency:
    """``GET /sleep/<seconds>`` answers ``ok`` after a pause; counts the requests in progress at once."""

    def __init__(self) -> None:
        self.lock, self.active, self.peak = threading.Lock(), 0, 0

    def sleep(self, request: WebRequest) -> Answer:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(float(request.path.rsplit("/", 1)[-1]))
        finally:
            with self.lock:
                self.active -= 1
        return Answer(body=b"ok", content_type="text/plain")


@pytest.fixture
def concurrency() -> Concurrency:
    return Concurrency()


@pytest.fixture
def http_server(concurrency: Concurrency) -> Iterator[WebServer]:
    with WebServer() as web:
        for seconds in ("0", "1.0", "0.15"):
            web.route(f"/sleep/{seconds}", concurrency.sleep)
        yield web


async def test_real_server_read_timeout(http_server: WebServer) -> None:
    port = http_server.port
    system = url_system(url_pattern=f"http://127.0.0.1:{port}/sleep/%s", read_timeout="~f0.2")
    await system.open()
    try:
        assert system.client is not None
        assert (await trio.to_thread.run_sync(system.client.get, system.url("0"))).text == "ok"
        with pytest.raises(httpx.ReadTimeout):
            await trio.to_thread.run_sync(system.client.get, system.url("1.0"))
    finally:
        await system.close()


async def test_real_server_connections_are_capped_by_worker_threads(http_server: WebServer,
                                                                   concurrency: Concurrency) -> None:
    port = http_server.port
    system = url_system(url_pattern=f"http://127.0.0.1:{port}/sleep/%s", worker_threads=2)
    await system.open()
    statuses: list[int] = []
    try:
        client = system.client
        assert client is not None

        async def get() -> None:
            statuses.append((await trio.to_thread.run_sync(client.get, system.url("0.15"))).status_code)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for _ in range(6):
                    nursery.start_soon(get)
    finally:
        await system.close()
    assert statuses == [200] * 6
    assert concurrency.peak == 2  # six requests, never more than two at once
    assert [r.path for r in http_server.requests] == ["/sleep/0.15"] * 6


# -- SQL systems (the local PostgreSQL and MariaDB) ----------------------------------------------------------


async def select_one(system: Any) -> Any:
    def run() -> Any:
        with system.engine.connect() as connection:
            return connection.execute(sqlalchemy.text("SELECT 1")).scalar()

    return await trio.to_thread.run_sync(run)


@pytest.mark.parametrize("config", [POSTGRES, MARIADB], ids=["postgresql", "mysql"])
async def test_sql_system_pool_runs_queries_and_closes(config: dict[str, Any]) -> None:
    system: Any = build_system(config)
    assert system.engine is None
    await system.open()
    engine = system.engine
    try:
        assert engine is not None and engine.dialect.name in ("postgresql", "mysql")
        results = []

        async def query() -> None:
            results.append(await select_one(system))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(query)
        assert results == [1, 1, 1]
        pool = system.status()["pool"]
        assert pool["size"] == config.get("pool_size", 10) and pool["checked-out"] == 0
        assert pool["checked-in"] >= 1  # connections are kept for reuse
    finally:
        await system.close()
    assert system.engine is None and not system.is_open
    assert engine.pool.checkedin() == 0  # disposed


async def test_sql_password_is_hidden_in_the_url() -> None:
    system: Any = build_system({**MARIADB, "password": "sw0rdfish"})
    assert "sw0rdfish" not in str(system.database_url())


@pytest.mark.parametrize("config", [{**POSTGRES, "port": 1}, {**MARIADB, "port": 1}], ids=["postgresql", "mysql"])
async def test_sql_system_opens_while_the_database_is_down(config: dict[str, Any]) -> None:
    actor = SystemActor(build_system(config))
    async with Supervisor() as supervisor:
        supervisor.start("sys", lambda: actor)
        system: Any = await actor.wait_open()
        assert actor.status.state == "open"
        with pytest.raises(sqlalchemy.exc.OperationalError):
            await select_one(system)
        assert actor.status.state == "open"  # a failing query does not take the system down


@pytest.mark.parametrize("database", ["file", ":memory:"])
async def test_sqlite_file_and_memory(tmp_path: Any, database: str) -> None:
    path = str(tmp_path / "db.sqlite") if database == "file" else database
    system: Any = build_system({"_id": "lite", "type": "system:sqlite", "database": path})
    await system.open()
    try:
        def write() -> None:
            with system.engine.begin() as connection:
                connection.execute(sqlalchemy.text("CREATE TABLE t (x INTEGER)"))
                connection.execute(sqlalchemy.text("INSERT INTO t VALUES (7)"))

        def read() -> Any:
            with system.engine.connect() as connection:
                return connection.execute(sqlalchemy.text("SELECT x FROM t")).scalar()

        await trio.to_thread.run_sync(write)
        assert await trio.to_thread.run_sync(read) == 7  # another worker thread sees it
    finally:
        await system.close()
    assert system.engine is None


# -- SystemActor ------------------------------------------------------------------------------------------


class Recorder(System):
    """A test system that records its opens and closes; ``fail_opens`` makes the first opens fail."""

    def __init__(self, worker_threads: int = 10, fail_opens: int = 0) -> None:
        super().__init__({"_id": "rec", "type": "system:test", "worker_threads": worker_threads})
        self.log: list[str] = []
        self.fail_opens = fail_opens

    async def open(self) -> None:
        self.log.append("open")
        if self.fail_opens:
            self.fail_opens -= 1
            raise ConnectionError("cannot open")
        await super().open()

    async def close(self) -> None:
        await trio.sleep(0.01)  # closing takes time (and must survive cancellation)
        self.log.append("close")
        await super().close()


FAST = RestartPolicy(initial=0.01, max_restarts=10)


async def test_actor_opens_and_closes_when_stopped() -> None:
    system = Recorder()
    actor = SystemActor(system)
    async with Supervisor(policy=FAST) as supervisor:
        supervisor.start("system:rec", lambda: actor)
        with trio.fail_after(5):
            assert await actor.wait_open() is system
        assert system.is_open and actor.status.state == "open" and system.log == ["open"]
        status = actor.status_json()
        assert status["state"] == "open" and status["is-valid-config"] and status["config-errors"] == []
        assert status["system"]["is-open"] is True and status["worker-threads"] == 10
        await supervisor.stop("system:rec")
        assert system.log == ["open", "close"] and not system.is_open and actor.status.state == "stopped"


async def test_actor_closes_on_cancel_and_reopens() -> None:
    system = Recorder()
    actor = SystemActor(system)
    async with Supervisor(policy=FAST) as supervisor:
        ref = supervisor.start("system:rec", lambda: actor)
        await actor.wait_open()
        await ref.send(Reload())
        with trio.fail_after(5):
            while actor.status.opens < 2:
                await trio.sleep(0.005)
        assert system.log == ["open", "close", "open"] and system.is_open
    # leaving the supervisor cancels the actor: the shielded close still runs
    assert system.log == ["open", "close", "open", "close"] and not system.is_open


async def test_a_crash_closes_the_resources_and_the_restart_reopens_them() -> None:
    system = Recorder()
    actor = SystemActor(system)
    events: list[tuple[str, dict[str, Any]]] = []
    async with Supervisor(policy=FAST, on_event=lambda kind, data: events.append((kind, data))) as supervisor:
        ref = supervisor.start("system:rec", lambda: actor)
        await actor.wait_open()
        await ref.send({"not": "a message"})  # a bug: the actor crashes
        with trio.fail_after(5):
            while actor.status.opens < 2:
                await trio.sleep(0.005)
        assert system.log == ["open", "close", "open"] and system.is_open
        assert supervisor.status("system:rec").restarts == 1
        assert events[0][0] == "actor-crashed" and "unknown message" in (actor.status.last_error or "")


async def test_a_failed_open_is_retried() -> None:
    system = Recorder(fail_opens=2)
    actor = SystemActor(system)
    async with Supervisor(policy=FAST) as supervisor:
        supervisor.start("system:rec", lambda: actor)
        with trio.fail_after(5):
            await actor.wait_open()
        assert system.log == ["open", "close", "open", "close", "open"] and system.is_open
        assert supervisor.status("system:rec").restarts == 2


async def test_limiter_caps_pipes_using_the_system() -> None:
    actor = SystemActor(Recorder(worker_threads=2))
    running = peak = 0
    async with Supervisor(policy=FAST) as supervisor:
        supervisor.start("system:rec", lambda: actor)

        async def pipe() -> None:
            nonlocal running, peak
            async with actor.using() as system:
                assert system.is_open
                running += 1
                peak = max(peak, running)
                assert running <= actor.status_json()["pipes-running"] <= 2
                await trio.sleep(0.02)
                running -= 1

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                for _ in range(7):
                    nursery.start_soon(pipe)
    assert peak == 2 and running == 0


async def test_using_waits_until_the_system_is_open() -> None:
    system = Recorder(fail_opens=1)
    actor = SystemActor(system)
    async with Supervisor(policy=RestartPolicy(initial=0.05)) as supervisor:
        supervisor.start("system:rec", lambda: actor)
        with trio.fail_after(5):
            async with actor.using() as used:
                assert used.is_open and system.log == ["open", "close", "open"]
