"""The lookup protocol pieces: IndexExpression, index_key and the in-memory lookup."""

from dtl import IndexExpression, Lookup, compile_transform, index_key
from dtl.testing import InMemoryLookup, typed


def test_index_expression_values_and_identity():
    index = IndexExpression(["lower", "_S.codes"])
    assert index.values({"codes": ["A", None, "b"]}) == ["a", "b"]
    assert index.values({}) == []
    assert index.evaluate({"codes": "X"}) == "x"
    same = IndexExpression(["lower", "_S.codes"])
    assert index == same and hash(index) == hash(same)
    assert index != IndexExpression("_S.codes")
    assert index.key == '["lower","_S.codes"]'


def test_index_key_follows_dtl_equality():
    assert index_key(1) == index_key(1.0) == index_key(typed("~f1"))
    assert index_key(True) != index_key(1)
    assert index_key(["a", 1]) == index_key(["a", 1]) and index_key({"a": 1}) != index_key({"a": 2})
    assert index_key(typed("~:a")) != index_key("a")


def test_in_memory_lookup():
    lookup = InMemoryLookup({"d": [{"_id": "b", "k": 1}, {"_id": "a", "k": [1, 2]}, {"_id": "c", "k": 1,
                                                                                    "_deleted": True}]})
    assert isinstance(lookup, Lookup)
    index = IndexExpression("_S.k")
    assert [e["_id"] for e in lookup.lookup("d", index, [1])] == ["a", "b"]
    assert [e["_id"] for e in lookup.lookup("d", index, [2, 1, 2])] == ["a", "b"]
    assert lookup.lookup("d", index, [True]) == []
    assert lookup.lookup("nope", index, [1]) == []
    lookup.put("d", {"_id": "a", "k": 3})
    assert [e["_id"] for e in lookup.lookup("d", index, [1])] == ["b"]
    assert lookup.get("d", "c") is None and lookup.get("d", "b") == {"_id": "b", "k": 1}


def test_bound_variables_and_custom_lookup_in_run():
    transform = compile_transform({"type": "dtl", "rules": {"default": [
        ["copy", "_id"], ["add", "p", "_B.page"], ["add", "x", ["lookup-entity", "d", "_S._id"]]]}})
    lookup = InMemoryLookup({"d": [{"_id": "a", "v": 1}]})
    assert transform.run([{"_id": "a"}], bound={"page": "2"}, lookup=lookup) == [
        {"_id": "a", "p": "2", "x": {"_id": "a", "v": 1}}]
