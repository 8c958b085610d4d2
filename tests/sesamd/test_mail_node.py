"""The ``mail`` sink through the real daemon: a ``system:smtp`` pointing at a local SMTP server (aiosmtpd) the
test starts, and an embedded-source pipe whose mail sink sends one message per entity when its pump runs."""

from __future__ import annotations

import email
import email.policy
import socket
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from sesamd.testing import serve_process


class Recorder:
    """Records ``(recipients, message)`` of each message the server takes."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Recorder]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, recorder
    finally:
        controller.stop()


def config(port: int) -> list[dict[str, Any]]:
    return [
        {"_id": "mailer", "type": "system:smtp", "smtp_server": "127.0.0.1", "smtp_port": port},
        {"_id": "notify", "type": "pipe", "pump": {"mode": "manual"},
         "source": {"type": "embedded", "entities": [
             {"_id": "1", "name": "Ann", "email": "ann@example.com", "amount": "~f12.50"},
             {"_id": "2", "name": "Bob", "email": "bob@example.com", "amount": "~f3"},
         ]},
         "sink": {"type": "mail", "system": "mailer", "mail_from": "node@example.com",
                  "recipients_property": "email", "subject_template": "Invoice {{ _id }} for {{ name }}",
                  "body_template": "<p>Dear {{ name }}, you owe <b>{{ amount }}</b>.</p>",
                  "text_body_template": "Dear {{ name }}, you owe {{ amount }}."}},
    ]


def runtime(client: httpx.Client, pipe_id: str) -> dict[str, Any]:
    response = client.get(f"/pipes/{pipe_id}/pump")
    assert response.status_code == 200, response.text
    return response.json()["runtime"]  # type: ignore[no-any-return]


def pump(client: httpx.Client, pipe_id: str, timeout: float = 30) -> dict[str, Any]:
    """Start a run and wait until the pump has finished it; returns the pump's runtime."""
    before = runtime(client, pipe_id).get("last-run")
    response = client.post(f"/pipes/{pipe_id}/pump", data={"operation": "start"})
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + timeout
    while True:
        now = runtime(client, pipe_id)
        if not now["is-running"] and now.get("last-run") not in (None, before):
            return now
        assert time.monotonic() < deadline, now
        time.sleep(0.05)


def test_a_pump_run_mails_each_entity(tmp_path: Path, smtp: tuple[int, Recorder]) -> None:
    port, recorder = smtp
    with serve_process(tmp_path / "data") as daemon:
        with httpx.Client(base_url=daemon.url, headers=daemon.headers, timeout=30) as client:
            response = client.put("/config", json=config(port))
            assert response.status_code == 200, response.text
            first = pump(client, "notify")
            assert first["success"] is True, (first.get("last-message"), first.get("last-original-error-message"))
            received = {str(m["Subject"]): (to, m) for to, m in recorder.messages}
            assert sorted(received) == ["Invoice 1 for Ann", "Invoice 2 for Bob"]
            to, message = received["Invoice 1 for Ann"]
            assert to == ["ann@example.com"] and message["From"] == "node@example.com"
            html = message.get_body(preferencelist=("html",))
            text = message.get_body(preferencelist=("plain",))
            assert html is not None and "you owe <b>12.50</b>" in html.get_content()  # type: ignore[attr-defined]
            assert text is not None and text.get_content().strip() == "Dear Ann, you owe 12.50."  # type: ignore
            assert received["Invoice 2 for Bob"][0] == ["bob@example.com"]
            assert len(recorder.messages) == 2
            status = client.get("/systems/mailer/status")
            assert status.status_code == 200, status.text
            assert status.json()["running"] is True and status.json()["config-errors"] == [], status.text
        assert daemon.terminate() == 0
