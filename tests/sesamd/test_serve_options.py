"""The LevelDB options of the node's datasets: ``sesamd serve --dataset-write-buffer-mb/--dataset-cache-mb``
reach the node's datasets; bad values are usage errors; ``sesamd dataset import`` uses the bulk profile."""

from __future__ import annotations

import gc
import json
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

import storage
import storage._leveldb
from sesamd import _cli, _node, _serve

MIB = 1 << 20
NODE = storage.LevelDBOptions.NODE


@pytest.fixture
def serve_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """``sesamd serve`` with ``_serve.serve`` replaced by a recorder that returns at once."""
    calls: list[dict[str, Any]] = []

    async def fake_serve(data_dir: Any, **kwargs: Any) -> None:
        calls.append({"data_dir": data_dir, **kwargs})

    monkeypatch.setattr(_serve, "serve", fake_serve)
    monkeypatch.setattr(_serve, "tune_process", lambda: None)
    monkeypatch.setenv("SESAMD_LOG_DIR", "off")  # no log file in the working directory's ./data
    return calls


def test_serve_flags_become_the_dataset_options(tmp_path: Path, serve_calls: list[dict[str, Any]]) -> None:
    data = str(tmp_path / "data")
    assert _cli.main(["serve", "--data-dir", data, "--dataset-write-buffer-mb", "3", "--dataset-cache-mb", "5"]) == 0
    assert _cli.main(["serve", "--data-dir", data, "--dataset-cache-mb", "100"]) == 0
    assert _cli.main(["serve", "--data-dir", data]) == 0
    options = [call["dataset_options"] for call in serve_calls]
    assert options[0] == NODE.replace(write_buffer_size=3 * MIB, lru_cache_size=5 * MIB)
    assert options[1] == NODE.replace(lru_cache_size=100 * MIB)
    assert options[2] == NODE
    assert all(call["data_dir"] == data for call in serve_calls)


@pytest.mark.parametrize("flag", ["--dataset-write-buffer-mb", "--dataset-cache-mb"])
@pytest.mark.parametrize("value", ["0", "-1", "1.5", "abc", "", "99999999"])
def test_bad_values_are_usage_errors(flag: str, value: str, serve_calls: list[dict[str, Any]],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(["serve", flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be a whole number of MiB from 1 to" in err
    assert repr(value) in err
    assert serve_calls == []


def test_write_buffer_above_leveldbs_limit_is_refused(serve_calls: list[dict[str, Any]],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["serve", "--dataset-write-buffer-mb", "1024"]) == 0  # LevelDB's maximum
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(["serve", "--dataset-write-buffer-mb", "1025"])
    assert exit_info.value.code == 2
    assert "from 1 to 1024, not '1025'" in capsys.readouterr().err
    assert [c["dataset_options"].write_buffer_size for c in serve_calls] == [1024 * MIB]


def test_dataset_options_helper() -> None:
    assert _serve.dataset_options() == NODE
    assert _serve.dataset_options(7, None) == NODE.replace(write_buffer_size=7 * MIB)
    assert _serve.dataset_options(None, 9).lru_cache_size == 9 * MIB


async def test_open_node_opens_its_datasets_with_the_options(tmp_path: Path) -> None:
    options = NODE.replace(write_buffer_size=2 * MIB, lru_cache_size=3 * MIB)
    async with _node.open_node(tmp_path / "a", dataset_options=options) as node:
        assert node.data_dir.options == options
        dataset = await trio.to_thread.run_sync(node.datasets.open, "people")
        assert dataset.options == options
    async with _node.open_node(tmp_path / "b") as node:
        assert node.data_dir.options == NODE
        dataset = await trio.to_thread.run_sync(node.datasets.open, "people")
        assert dataset.options == NODE


async def test_serve_passes_the_options_to_the_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real ``serve`` (API on a free port): the node it opens has the options, and so its datasets."""
    nodes: list[Any] = []
    real_open_node = _node.open_node

    @asynccontextmanager
    async def recording_open_node(*args: Any, **kwargs: Any) -> Any:
        async with real_open_node(*args, **kwargs) as node:
            nodes.append(node)
            yield node

    monkeypatch.setattr(_node, "open_node", recording_open_node)
    options = _serve.dataset_options(4, 6)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(lambda task_status: _serve.serve(
            tmp_path / "data", port=0, dataset_options=options, task_status=task_status))
        assert url.startswith("http://")
        [node] = nodes
        assert node.data_dir.options == options
        dataset = await trio.to_thread.run_sync(node.datasets.open, "written")
        assert (dataset.options.write_buffer_size, dataset.options.lru_cache_size) == (4 * MIB, 6 * MIB)
        nursery.cancel_scope.cancel()


def test_dataset_import_uses_the_bulk_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[dict[str, Any]] = []
    real = storage._leveldb.plyvel.DB

    def recording(path: str, **kwargs: Any) -> Any:
        opened.append(kwargs)
        return real(path, **kwargs)

    monkeypatch.setattr(storage._leveldb.plyvel, "DB", recording)
    file = tmp_path / "people.json"
    file.write_text(json.dumps([{"_id": "a"}, {"_id": "b"}]))
    data = str(tmp_path / "data")
    assert _cli.main(["dataset", "import", "people", str(file), "--data-dir", data]) == 0
    assert opened[-1]["write_buffer_size"] == storage.LevelDBOptions.BULK.write_buffer_size
    assert opened[-1]["lru_cache_size"] == storage.LevelDBOptions.BULK.lru_cache_size
    assert _cli.main(["dataset", "list", "--data-dir", data]) == 0  # reading: the node profile
    assert opened[-1]["write_buffer_size"] == NODE.write_buffer_size


def test_process_tuning_raises_the_gc_threshold_and_freezes_startup_objects() -> None:
    from sesamd import _process

    before = gc.get_threshold()
    try:
        _process.tune_process()
        assert gc.get_threshold() == _process.GC_THRESHOLD
        _process.freeze_startup()
        assert gc.get_freeze_count() > 1000  # modules, functions and the rest of this test process
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_busy_port_is_one_line_saying_so(tmp_path: Path) -> None:
    """A port another process listens on: ``sesamd: error: address HOST:PORT is already in use``, exit 2."""
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "sesamd._cli", "serve", "--settings", "/dev/null", "--port",
                               str(port), "--data-dir", str(tmp_path / "data")], capture_output=True, text=True,
                              timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"sesamd: error: address 127.0.0.1:{port} is already in use (is another sesamd running?)\n"
