"""The systemd unit (``systemd/sesamd.service``), its example settings files and ``scripts/install-service``.

``systemd-analyze verify`` (Debian's ``systemd`` package; ``scripts/test`` installs it when missing) checks the
unit as ``scripts/install-service`` renders it, with ExecStart pointing at this checkout's ``sesamd``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from sesamd import _serve, _settings

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "sesamd.service"
INSTALL = ROOT / "scripts" / "install-service"
SESAMD = Path(sys.executable).with_name("sesamd")


def directives(text: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file (comments skipped), each key's values in order."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: scripts/test installs the Debian package systemd"
    return subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, cwd=ROOT)


def test_the_unit_is_a_watched_notify_service_with_hardening() -> None:
    unit = directives(UNIT.read_text())
    one = {key: values[-1] for key, values in unit.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert seconds(one["WatchdogSec"]) >= 10
    assert one["User"] == one["Group"] == "sesamd"
    assert one["StateDirectory"] == "sesamd" and one["LogsDirectory"] == "sesamd"
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert one["ExecStart"].startswith("/opt/sesamd/.venv/bin/sesamd serve ")
    assert one["Restart"] == "on-failure" and seconds(one["RestartSec"]) > 0
    assert int(one["StartLimitBurst"]) > 0 and seconds(one["StartLimitIntervalSec"]) > 0
    assert one["EnvironmentFile"] == "-/etc/sesamd/sesamd.env"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
                "ProtectKernelModules", "ProtectKernelLogs", "LockPersonality"):
        assert one[key] == "true", key
    assert one["ProtectSystem"] == "strict"
    assert one["RestrictAddressFamilies"].split() == ["AF_UNIX", "AF_INET", "AF_INET6"]  # AF_UNIX: sd_notify
    assert "#MemoryMax=" in UNIT.read_text()  # the documented knob, off by default


def test_the_stop_timeout_covers_the_drain() -> None:
    """systemd must not SIGKILL a node that is still within its own stop deadline: the default grace (the
    drain timeout), the HTTP drain and the margin after which ``serve`` cancels what still runs."""
    stop = seconds(directives(UNIT.read_text())["TimeoutStopSec"][-1])
    grace = _settings.BY_NAME["grace"].default
    assert stop >= grace + _serve.HTTP_DRAIN + _serve.HARD_STOP_MARGIN


def test_the_example_settings_files_name_real_settings(tmp_path: Path) -> None:
    toml = ROOT / "systemd" / "sesamd.toml.example"
    effective = _settings.resolve(settings=str(toml), environ={})
    assert effective["data_dir"] == "/var/lib/sesamd/data"
    assert {source for source, _ in effective.sources.values()} == {"file", "default"}
    env_lines = [line.lstrip("#") for line in (ROOT / "systemd" / "sesamd.env.example").read_text().splitlines()
                 if line.startswith("#SESAMD_")]
    environ = dict(line.split("=", 1) for line in env_lines)
    assert set(environ) == {s.env for s in _settings.SETTINGS if not s.hidden}
    effective = _settings.resolve(environ=environ, settings=str(toml))
    assert all(source == "env" for name, (source, _) in effective.sources.items() if name != "poll_interval")


def test_systemd_analyze_verifies_the_installed_unit(tmp_path: Path) -> None:
    assert SESAMD.exists()
    done = install("--prefix", str(tmp_path))
    assert done.returncode == 0, done.stderr
    unit = tmp_path / "etc/systemd/system/sesamd.service"
    assert directives(unit.read_text())["ExecStart"] == [f"{ROOT}/.venv/bin/sesamd serve --settings "
                                                         f"/etc/sesamd/sesamd.toml"]
    checked = verify(unit)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "sesamd.service" not in checked.stdout + checked.stderr  # not a single remark about our unit


def test_systemd_analyze_refuses_a_broken_unit(tmp_path: Path) -> None:
    """The check above has teeth: an unknown directive and a missing executable are reported."""
    missing = tmp_path / "no-such-sesamd"
    broken = tmp_path / "sesamd.service"
    broken.write_text(UNIT.read_text().replace("Type=notify", "Type=notify\nWatchdogSecs=30s")
                      .replace("/opt/sesamd/.venv/bin/sesamd", str(missing)))
    checked = verify(broken)
    assert "WatchdogSecs" in checked.stderr
    assert checked.returncode != 0 and str(missing) in checked.stderr


def test_install_service_dry_run_prints_the_steps_and_changes_nothing(tmp_path: Path) -> None:
    done = install("--dry-run", "--prefix", str(tmp_path / "root"))
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "root").exists()
    out = done.stdout
    assert f"+ install -m 0644 systemd/sesamd.toml.example {tmp_path}/root/etc/sesamd/sesamd.toml" in out
    assert f"+ write {tmp_path}/root/etc/systemd/system/sesamd.service" in out
    assert "dry run: nothing changed" in out
    system = install("--dry-run")  # the real paths: needs no root, touches nothing
    assert system.returncode == 0, system.stderr
    assert "systemctl daemon-reload" in system.stdout or "/etc/systemd/system/sesamd.service is up to date" in \
        system.stdout
    assert "+ useradd --system" in system.stdout or "= " in system.stdout


def test_install_service_is_idempotent_and_keeps_an_edited_settings_file(tmp_path: Path) -> None:
    assert install("--prefix", str(tmp_path)).returncode == 0
    settings = tmp_path / "etc/sesamd/sesamd.toml"
    settings.write_text('port = 9999\n')
    again = install("--prefix", str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert "+ " not in again.stdout  # nothing to do the second time
    assert "sesamd.toml exists: kept" in again.stdout and "sesamd.service is up to date" in again.stdout
    assert settings.read_text() == "port = 9999\n"
    assert (tmp_path / "var/lib/sesamd").is_dir() and (tmp_path / "var/log/sesamd").is_dir()


def test_install_service_refuses_unknown_arguments() -> None:
    done = install("--frobnicate")
    assert done.returncode == 2 and "unknown argument: --frobnicate" in done.stderr
