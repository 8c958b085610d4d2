"""``sesamd token`` and ``sesamd user add|list|remove`` on a real data directory."""

from __future__ import annotations

import functools
import io
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from sesamd import _auth_cli
from sesamd._auth import Authenticator, Unauthenticated, UserStore
from sesamd._cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    return str(tmp_path / "data")


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheaper argon2 parameters for the command (the terminal test keeps the defaults)."""
    cheap = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    monkeypatch.setattr(_auth_cli, "UserStore", functools.partial(UserStore, hasher=cheap))


def stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


# -- token ---------------------------------------------------------------------------------------------


def test_token_prints_one_token(capsys, data_dir: str) -> None:
    code, out, err = run(capsys, "token", "--role", "guest", "--subject", "ops@example.com", "--data-dir", data_dir)
    assert code == 0, err
    assert out.endswith("\n") and out.count("\n") == 1
    principal = Authenticator(data_dir).verify(out.strip())
    assert (principal.subject, principal.role) == ("ops@example.com", "guest")


def test_token_expires(capsys, data_dir: str) -> None:
    code, out, err = run(capsys, "token", "--role", "admin", "--expires", "0.5", "--data-dir", data_dir)
    assert code == 0, err
    token = out.strip()
    auth = Authenticator(data_dir)
    assert auth.verify(token).subject == "sesamd-cli"
    with pytest.raises(Unauthenticated, match="expired"):
        Authenticator(data_dir, clock=lambda: auth._clock() + 43201).verify(token)


@pytest.mark.parametrize(("argv", "message"), [
    (["--role", "root"], "unknown role 'root' (known roles: admin, developer, guest, user)"),
    (["--role", "admin", "--expires", "soon"], "--expires must be a positive number of days, not 'soon'"),
    (["--role", "admin", "--expires", "0"], "--expires must be a positive number of days"),
    (["--role", "admin", "--expires", "-3"], "--expires must be a positive number of days"),
    (["--role", "admin", "--subject", ""], "--subject must not be empty"),
    (["--rotate-key", "--expires", "3"], "--expires goes with --role"),
])
def test_token_bad_input(capsys, data_dir: str, argv: list[str], message: str) -> None:
    code, out, err = run(capsys, "token", *argv, "--data-dir", data_dir)
    assert code == 2 and out == ""
    assert err.startswith("sesamd: error: ") and message in err


def test_token_needs_role_or_rotate(capsys, data_dir: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["token", "--data-dir", data_dir])
    assert info.value.code == 2


def test_rotate_key(capsys, data_dir: str) -> None:
    code, old, _ = run(capsys, "token", "--role", "admin", "--data-dir", data_dir)
    running = Authenticator(data_dir)  # as a node would hold it
    assert running.verify(old.strip()).role == "admin"
    code, out, err = run(capsys, "token", "--rotate-key", "--data-dir", data_dir)
    assert code == 0 and out == ""
    assert "every earlier token is now invalid" in err
    with pytest.raises(Unauthenticated, match="was the key rotated"):
        Authenticator(data_dir).verify(old.strip())
    code, new, _ = run(capsys, "token", "--role", "admin", "--data-dir", data_dir)
    assert Authenticator(data_dir).verify(new.strip()).role == "admin"


def test_token_subprocess(tmp_path: Path) -> None:
    sesamd = Path(sys.executable).parent / "sesamd"
    data = tmp_path / "data"
    result = subprocess.run([str(sesamd), "token", "--role", "admin", "--data-dir", str(data)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert Authenticator(data).verify(result.stdout.strip()).role == "admin"
    assert Authenticator(data).authenticate(f"Bearer {result.stdout.strip()}").may("admin")


# -- user ----------------------------------------------------------------------------------------------


def test_user_add_list_remove(capsys, monkeypatch, cheap_hashes, data_dir: str) -> None:
    stdin(monkeypatch, "s3cret pass\n")
    code, out, err = run(capsys, "user", "add", "Ann@Example.com", "--role", "admin", "--data-dir", data_dir)
    assert code == 0, err
    assert "'ann@example.com' added with the role 'admin'" in err
    stdin(monkeypatch, "other\r\n")
    assert run(capsys, "user", "add", "bob@example.com", "--data-dir", data_dir)[0] == 0

    store = _auth_cli.UserStore(data_dir)
    assert store.check("ann@example.com", "s3cret pass") == "admin"
    assert store.check("bob@example.com", "other") == "developer"

    code, out, err = run(capsys, "user", "list", "--data-dir", data_dir)
    assert code == 0, err
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["EMAIL", "ROLE", "CREATED"]
    assert [line[:2] for line in lines[1:]] == [["ann@example.com", "admin"], ["bob@example.com", "developer"]]
    assert all(line[2].endswith("Z") for line in lines[1:])
    assert "argon2" not in out

    stdin(monkeypatch, "newpass")  # no trailing newline
    code, out, err = run(capsys, "user", "add", "ann@example.com", "--role", "guest", "--data-dir", data_dir)
    assert code == 0 and "updated" in err
    assert store.check("ann@example.com", "newpass") == "guest"

    code, out, err = run(capsys, "user", "remove", "ANN@example.com", "--data-dir", data_dir)
    assert code == 0 and "removed" in err
    assert store.check("ann@example.com", "newpass") is None
    code, out, err = run(capsys, "user", "remove", "ann@example.com", "--data-dir", data_dir)
    assert code == 2 and err == "sesamd: error: no user with the email 'ann@example.com'\n"


def test_user_password_from_terminal(capsys, monkeypatch, data_dir: str) -> None:
    monkeypatch.setattr(sys, "stdin", TTY())
    answers = iter(["typed pw", "typed pw"])
    prompts: list[str] = []
    monkeypatch.setattr(_auth_cli.getpass, "getpass", lambda prompt="": prompts.append(prompt) or next(answers))
    code, _, err = run(capsys, "user", "add", "c@example.com", "--role", "user", "--data-dir", data_dir)
    assert code == 0, err
    assert len(prompts) == 2
    assert UserStore(data_dir).check("c@example.com", "typed pw") == "user"

    answers = iter(["one", "two"])
    code, _, err = run(capsys, "user", "add", "d@example.com", "--data-dir", data_dir)
    assert code == 2 and err == "sesamd: error: the passwords do not match\n"
    assert [u["email"] for u in UserStore(data_dir).list()] == ["c@example.com"]


@pytest.mark.parametrize(("argv", "text", "message"), [
    (["nobody"], "pw\n", "not an email address: 'nobody'"),
    (["a@example.com", "--role", "root"], "pw\n", "unknown role 'root'"),
    (["a@example.com"], "\n", "the password is empty"),
    (["a@example.com"], "", "the password is empty"),
])
def test_user_add_bad_input(capsys, monkeypatch, cheap_hashes, data_dir, argv: list[str], text: str,
                            message: str) -> None:
    stdin(monkeypatch, text)
    code, _, err = run(capsys, "user", "add", *argv, "--data-dir", data_dir)
    assert code == 2 and err.startswith("sesamd: error: ") and message in err
    assert UserStore(data_dir).list() == []


def test_user_list_empty(capsys, data_dir: str) -> None:
    code, out, _ = run(capsys, "user", "list", "--data-dir", data_dir)
    assert code == 0 and out.split() == ["EMAIL", "ROLE", "CREATED"]
