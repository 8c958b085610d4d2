"""``sesamd dataset import|export|list|check`` end to end on a real data directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import storage
from sesamd._cli import main


def run(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, str]:
    code = main(list(argv))
    captured = capsysbinary.readouterr()
    return code, captured.out, captured.err.decode()


@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    return str(tmp_path / "data")


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def export(capsysbinary, data_dir: str, *flags: str) -> list[dict]:
    code, out, err = run(capsysbinary, "dataset", "export", "people", "--data-dir", data_dir, *flags)
    assert code == 0, err
    return json.loads(out)


def test_import_then_export_keeps_decimal_digits_and_types(tmp_path, data_dir, capsysbinary) -> None:
    file = write(tmp_path / "people.json", '[{"_id": "1", "amount": 22.10, "big": 123456789012345678901234567890,'
                                            ' "when": "~t2020-01-02T03:04:05.123456789Z"}, {"_id": "2"}]')
    code, _, err = run(capsysbinary, "dataset", "import", "people", file, "--data-dir", data_dir)
    assert code == 0, err
    assert "2 entities read, 2 versions written" in err
    exported = export(capsysbinary, data_dir)
    assert [e["_id"] for e in exported] == ["1", "2"]
    assert exported[0]["amount"] == "~f22.10"
    assert exported[0]["big"] == 123456789012345678901234567890
    assert exported[0]["when"] == "~t2020-01-02T03:04:05.123456789Z"
    assert exported[0]["_updated"] == 0 and exported[1]["_updated"] == 1
    assert len(exported[0]["_hash"]) == 32


def test_importing_the_same_file_twice_adds_no_versions(tmp_path, data_dir, capsysbinary) -> None:
    file = write(tmp_path / "people.ndjson", '{"_id": "1", "x": 1}\n{"_id": "2", "x": 2}\n')
    assert run(capsysbinary, "dataset", "import", "people", file, "--data-dir", data_dir)[0] == 0
    code, _, err = run(capsysbinary, "dataset", "import", "people", file, "--data-dir", data_dir)
    assert code == 0
    assert "0 versions written" in err
    assert len(export(capsysbinary, data_dir, "--history", "--deleted")) == 2


def test_full_import_deletes_ids_missing_from_the_file(tmp_path, data_dir, capsysbinary) -> None:
    first = write(tmp_path / "a.json", '[{"_id": "1", "x": 1}, {"_id": "2", "x": 2}, {"_id": "3", "x": 3}]')
    second = write(tmp_path / "b.json", '[{"_id": "1", "x": 1}, {"_id": "3", "x": 30}]')
    run(capsysbinary, "dataset", "import", "people", first, "--data-dir", data_dir)
    code, _, err = run(capsysbinary, "dataset", "import", "people", second, "--full", "--data-dir", data_dir)
    assert code == 0, err
    assert "1 deleted" in err
    assert [(e["_id"], e["x"]) for e in export(capsysbinary, data_dir)] == [("3", 30)] or \
        [(e["_id"], e["x"]) for e in export(capsysbinary, data_dir)] == [("1", 1), ("3", 30)]
    live = export(capsysbinary, data_dir)
    assert sorted(e["_id"] for e in live) == ["1", "3"]
    everything = export(capsysbinary, data_dir, "--history", "--deleted")
    deleted = [e for e in everything if e["_deleted"]]
    assert [(e["_id"], e["x"], e["_previous"]) for e in deleted] == [("2", 2, 1)]
    only_deleted_latest = export(capsysbinary, data_dir, "--deleted")
    assert sorted(e["_id"] for e in only_deleted_latest) == ["1", "2", "3"]


def test_export_since_limit_and_history(tmp_path, data_dir, capsysbinary) -> None:
    run(capsysbinary, "dataset", "import", "people", write(tmp_path / "a.json", '[{"_id":"a","v":1},{"_id":"b"}]'),
        "--data-dir", data_dir)
    run(capsysbinary, "dataset", "import", "people", write(tmp_path / "b.json", '[{"_id":"a","v":2}]'),
        "--data-dir", data_dir)
    assert [(e["_id"], e["_updated"]) for e in export(capsysbinary, data_dir)] == [("b", 1), ("a", 2)]
    history = export(capsysbinary, data_dir, "--history")
    assert [(e["_id"], e["_updated"], e["_previous"]) for e in history] == [("a", 0, None), ("b", 1, None),
                                                                             ("a", 2, 0)]
    assert [e["_updated"] for e in export(capsysbinary, data_dir, "--history", "--since", "0")] == [1, 2]
    assert [e["_updated"] for e in export(capsysbinary, data_dir, "--history", "--limit", "1")] == [0]
    assert export(capsysbinary, data_dir, "--since", "2") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"_id": "ok"}, {"_id": 7}]', "line 1, entity #2: _id must be a string"),
        ('[{"_id": "ok"},\n{"name": "no id"}]', "line 2, entity #2: the entity has no _id"),
        ('[{"_id": "ok"},\n "text"]', "line 2, entity #2: an entity must be a JSON object, not a string"),
        ('[{"_id": "ok"},\n{"_id": "x", }]', "line 2, column 14"),
        ('{"_id": "ok"}\n{"_id": "b"} {"_id": "c"}\n', "line 2"),
        ('[{"_id": "ok"}', "unexpected end of input"),
    ],
)
def test_bad_input_exits_2_and_leaves_the_dataset_as_it_was(tmp_path, data_dir, capsysbinary, text, message):
    good = write(tmp_path / "good.json", '[{"_id": "ok", "v": 1}]')
    run(capsysbinary, "dataset", "import", "people", good, "--data-dir", data_dir)
    before = export(capsysbinary, data_dir, "--history", "--deleted")
    bad = write(tmp_path / "bad.json", text.replace('"ok"}', '"ok", "v": 2}'))
    code, _, err = run(capsysbinary, "dataset", "import", "people", bad, "--data-dir", data_dir)
    assert code == 2
    assert message in err
    assert "bad.json" in err
    assert export(capsysbinary, data_dir, "--history", "--deleted") == before


def test_list_and_check(tmp_path, data_dir, capsysbinary) -> None:
    run(capsysbinary, "dataset", "import", "people", write(tmp_path / "a.json", '[{"_id":"a"},{"_id":"b"}]'),
        "--data-dir", data_dir)
    run(capsysbinary, "dataset", "import", "system:odd/../x", write(tmp_path / "b.json", "[]"), "--data-dir", data_dir)
    run(capsysbinary, "dataset", "import", "orders:2024", write(tmp_path / "c.json", '[{"_id":"o"}]'),
        "--data-dir", data_dir)
    code, out, _ = run(capsysbinary, "dataset", "list", "--data-dir", data_dir)
    assert code == 0
    lines = out.decode().splitlines()
    assert lines[0].split() == ["DATASET", "ENTITIES", "DELETED", "VERSIONS"]
    assert [line.split() for line in lines[1:]] == [["orders:2024", "1", "0", "1"], ["people", "2", "0", "2"]]
    assert run(capsysbinary, "dataset", "check", "people", "--data-dir", data_dir)[0] == 0


def test_missing_dataset_and_file_are_clear_errors(tmp_path, data_dir, capsysbinary) -> None:
    code, _, err = run(capsysbinary, "dataset", "export", "nope", "--data-dir", data_dir)
    assert code == 2 and "no dataset 'nope'" in err
    code, _, err = run(capsysbinary, "dataset", "import", "people", str(tmp_path / "missing.json"),
                       "--data-dir", data_dir)
    assert code == 2 and "no such file" in err
    code, _, err = run(capsysbinary, "dataset", "export", "people", "--since", "-1", "--data-dir", data_dir)
    assert code == 2


def test_console_script_reads_standard_input(tmp_path, data_dir) -> None:
    result = subprocess.run([sys.executable, "-m", "sesamd._cli", "dataset", "import", "people", "-",
                             "--data-dir", data_dir], input=b'{"_id": "s", "n": 1.5}\n', capture_output=True)
    assert result.returncode == 0, result.stderr
    with storage.DataDir(data_dir).open_dataset("people", create=False) as dataset:
        assert dataset.get("s")["n"] == "~f1.5"


@pytest.mark.parametrize("limit", [0, 1 << 30], ids=["in-batches", "one-batch"])
def test_both_import_paths_are_all_or_nothing_and_idempotent(tmp_path, limit) -> None:
    from sesamd._dataset_cli import CLIError, import_file

    entities = [{"_id": f"{i:05}", "n": i} for i in range(2500)]  # several batches of the large-file path
    good = write(tmp_path / "good.json", json.dumps(entities))
    bad = write(tmp_path / "bad.json", json.dumps([*entities, {"_id": 7}]))  # the last entity is bad
    data = storage.DataDir(tmp_path / "data")
    with data.open_dataset("people") as dataset:
        with pytest.raises(CLIError, match=r"bad\.json"):
            import_file(dataset, bad, one_batch_limit=limit)
        assert dataset.counts()["log"] == 0  # nothing of the bad file was written
        assert import_file(dataset, good, one_batch_limit=limit) == {"entities": 2500, "written": 2500,
                                                                     "deleted": 0}
        assert import_file(dataset, good, one_batch_limit=limit)["written"] == 0
        offset = dataset.get_offset("import")
        assert offset["complete"] is True and offset.get("position", 2500) == 2500
        assert [e["n"] for e in dataset.iter_entities()] == list(range(2500))
