"""The getting-started guide's three configurations from ``../shared/tutorial/``, unchanged, on a real
``sesamd serve``: ``sesam-seed`` (``json`` sources pulling from a web server the test starts; only its
``YOUR-IP-HERE:8000`` placeholder replaced), ``sesam`` (``http_endpoint`` receivers the test pushes the
tutorial files to) and ``sesam-embedded`` (the data in the config; its pumps, on the 900 s default schedule,
are started through the pump API). Each must produce the customers-with-orders
output the guide describes, computed here from the tutorial data by doing what the config's DTL does; the
first two then follow a new order for Maria by dependency tracking. The files are read at test time, never
copied into the project; without them the tests fail."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from actors.testing import WebServer
from sesamd._config import parse_config
from sesamd.testing import Daemon, serve_process

TUTORIAL = Path(__file__).resolve().parents[2].parent / "shared" / "tutorial"
PLACEHOLDER = b"YOUR-IP-HERE:8000"
JSON = {"Content-Type": "application/json"}
# the new order of the guide's dependency-tracking step: one item for Maria (customer "2")
NEW_ORDER = b'{"_id": "1003", "customer_id": "2", "items": [{"ean": "978-0000000001", "price": 19.95, "quantity": 1}]}'


def tutorial(name: str) -> bytes:
    """A file of the shared tutorial; fails (never skips) when the tutorial is not there."""
    assert TUTORIAL.is_dir(), f"the shared tutorial directory {TUTORIAL} is missing: these tests need it"
    path = TUTORIAL / name
    assert path.is_file(), f"the shared tutorial file {path} is missing"
    return path.read_bytes()


def with_new_order(orders: bytes) -> bytes:
    """The tutorial's orders.json with :data:`NEW_ORDER` appended, its numbers still JSON numbers."""
    head = orders.rstrip()
    assert head.endswith(b"]"), "orders.json is not a JSON array"
    changed = head[:-1].rstrip() + b",\n    " + NEW_ORDER + b"\n]\n"
    assert [o["_id"] for o in parse_config(changed)] == [*(o["_id"] for o in parse_config(orders)), "1003"]
    return changed


def number(value: Any) -> Decimal:
    """A wire-form number (an int or a ``~f`` decimal) as a Decimal."""
    if isinstance(value, str):
        assert value.startswith("~f"), value
        return Decimal(value[2:])
    assert isinstance(value, int) and not isinstance(value, bool), value
    return Decimal(value)


def expected(customers: bytes, orders: bytes) -> dict[str, tuple[str, int, str, list[str]]]:
    """What the guide's customers-with-orders DTL makes of these files, by ``_id`` (the customers' own: the
    DTL sets none): name, order count, total and the orders' totals, as wire strings. An order's total is
    the sum of quantity * price over its items minus its discount (``minus`` takes its first argument from
    its second), a customer's the sum of their orders'; customers with a total of 25 or less are filtered
    out."""
    result = {}
    all_orders = parse_config(orders)
    for customer in parse_config(customers):
        totals = [sum((number(i["quantity"]) * number(i["price"]) for i in o["items"]), Decimal(0))
                  - number(o.get("discount", 0)) for o in all_orders if o["customer_id"] == customer["_id"]]
        total = sum(totals, Decimal(0))
        if total > Decimal("25.00"):
            result[customer["_id"]] = (f"{customer['first_name']} {customer['last_name']}", len(totals),
                                       f"~f{total}", sorted(f"~f{t}" for t in totals))
    return result


def guide_output() -> dict[str, tuple[str, int, str, list[str]]]:
    """The expected output for the tutorial data, checked against the numbers the guide gives."""
    output = expected(tutorial("customers/customers.json"), tutorial("orders/orders.json"))
    assert output == {"1": ("John Smith", 2, "~f123.90", ["~f40.00", "~f83.90"]),
                      "2": ("Maria Hawkins", 1, "~f39.95", ["~f39.95"])}, output
    return output


def guide_output_with_new_order() -> dict[str, tuple[str, int, str, list[str]]]:
    output = expected(tutorial("customers/customers.json"), with_new_order(tutorial("orders/orders.json")))
    assert output["2"] == ("Maria Hawkins", 2, "~f59.90", ["~f19.95", "~f39.95"]), output
    return output


def summary(entities: list[dict[str, Any]]) -> dict[str, tuple[str, int, str, list[str]]]:
    """customers-with-orders as :func:`expected` gives it (and every entity a ``customer``)."""
    assert all(e.get("type") == "customer" for e in entities), entities
    return {e["_id"]: (e.get("name"), e.get("order_count"), e.get("total"),
                       sorted(str(o.get("total")) for o in e.get("orders") or [])) for e in entities}


@contextmanager
def node(tmp_path: Path) -> Iterator[tuple[Daemon, httpx.Client]]:
    with serve_process(tmp_path / "data") as daemon, \
            httpx.Client(base_url=daemon.url, headers=daemon.headers, timeout=30) as client:
        yield daemon, client


def upload(client: httpx.Client, config: bytes) -> None:
    response = client.put("/config", content=config, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json() == {"validation_errors": []}, response.text


def log_tail(daemon: Daemon) -> str:
    return daemon.log.read_text(errors="replace")[-3000:] if daemon.log.exists() else "(no log)"


def wait_for(daemon: Daemon, client: httpx.Client, want: dict[str, Any], timeout: float = 30) -> None:
    """Poll customers-with-orders until its summary is ``want``; fails with the node's log after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/datasets/customers-with-orders/entities",
                              params={"history": "false", "deleted": "false"})
        if response.status_code == 200 and summary(response.json()) == want:
            return
        assert time.monotonic() < deadline, (f"customers-with-orders after {timeout} s: {response.status_code} "
                                             f"{response.text[:1000]}\nwanted {want}\nlog:\n{log_tail(daemon)}")
        time.sleep(0.1)


def start_pump(client: httpx.Client, pipe_id: str) -> None:
    response = client.post(f"/pipes/{pipe_id}/pump", data={"operation": "start"})
    assert response.status_code in (200, 409), response.text  # 409: a run is already going


def run_pipe(daemon: Daemon, client: httpx.Client, pipe_id: str, timeout: float = 30) -> None:
    """Start a run of ``pipe_id`` and wait until the pump is idle again after a successful run."""
    start_pump(client, pipe_id)
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/pipes/{pipe_id}/pump")
        assert response.status_code == 200, response.text
        runtime = response.json()["runtime"]
        if not runtime["is-running"] and runtime["last-run"] is not None:
            assert runtime["success"] is True, f"{pipe_id}: {runtime}\nlog:\n{log_tail(daemon)}"
            return
        assert time.monotonic() < deadline, f"{pipe_id} still running: {runtime}\nlog:\n{log_tail(daemon)}"
        time.sleep(0.05)


def stop(daemon: Daemon, client: httpx.Client) -> None:
    """SIGTERM the node, which must exit 0; our keep-alive connection is closed first (hypercorn otherwise
    waits out its graceful timeout for it)."""
    client.close()
    assert daemon.terminate() == 0, log_tail(daemon)


def test_the_seed_configuration_pulls_by_itself_and_follows_a_new_order(tmp_path: Path) -> None:
    want, want_after = guide_output(), guide_output_with_new_order()
    config = tutorial("sesam-seed.conf.json")
    assert config.count(PLACEHOLDER) == 2
    orders = tutorial("orders/orders.json")
    with WebServer() as web, node(tmp_path) as (daemon, client):
        web.route("/customers/customers.json", tutorial("customers/customers.json"))
        web.route("/orders/orders.json", orders)
        upload(client, config.replace(PLACEHOLDER, f"127.0.0.1:{web.port}".encode()))
        wait_for(daemon, client, want)  # no manual run: never-run pulling pipes start on their own
        assert web.of("/customers/customers.json") and web.of("/orders/orders.json")

        web.route("/orders/orders.json", with_new_order(orders))
        start_pump(client, "orders")
        wait_for(daemon, client, want_after)  # customers-with-orders follows orders by dependency tracking
        stop(daemon, client)


def test_the_receiver_configuration_takes_the_pushed_files_and_a_new_order(tmp_path: Path) -> None:
    want, want_after = guide_output(), guide_output_with_new_order()
    with node(tmp_path) as (daemon, client):
        upload(client, tutorial("sesam.conf.json"))
        for pipe_id, name in (("customers", "customers/customers.json"), ("orders", "orders/orders.json")):
            response = client.post(f"/receivers/{pipe_id}/entities", content=tutorial(name), headers=JSON)
            assert response.status_code == 200, response.text
        wait_for(daemon, client, want)

        response = client.post("/receivers/orders/entities", content=b"[" + NEW_ORDER + b"]", headers=JSON)
        assert response.status_code == 200, response.text
        wait_for(daemon, client, want_after)
        stop(daemon, client)


def test_the_embedded_configuration_fills_itself(tmp_path: Path) -> None:
    want = guide_output()
    config = tutorial("sesam-embedded.conf.json")
    embedded = {pipe["_id"]: pipe["source"].get("entities") for pipe in parse_config(config)}
    assert embedded["customers"] == parse_config(tutorial("customers/customers.json"))  # the same data
    assert embedded["orders"] == parse_config(tutorial("orders/orders.json"))
    with node(tmp_path) as (daemon, client):
        upload(client, config)
        # embedded sources pull from no system, so their pumps keep the default 900 s schedule (node-spec
        # 5.2) and have no first run soon after the upload: run them, in dependency order
        for pipe_id in ("customers", "orders", "customers-with-orders"):
            run_pipe(daemon, client, pipe_id)
        wait_for(daemon, client, want)
        stop(daemon, client)
