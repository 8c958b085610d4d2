"""The transform functions and emission."""

import pytest

from dtl import DTLRuntimeError, DTLTripError
from dtl.testing import run, steps


def test_add_default_add_if():
    assert steps([["add", "a", 1], ["add", "b", ["+", "_T.a", 1]], ["add", "a", 2]], {}) == {"a": 2, "b": 2}
    assert steps([["add", ["list", "p", "q"], None], ["add", ["concat", "x-", "_S.k"], ["list"]]], {"k": "c"}) == {
        "p": None, "q": None, "x-c": []}
    assert steps([["default", "a", 1], ["default", "b", 2]], {}, target={"a": 0}) == {"a": 0, "b": 2}
    assert steps([["add-if", "f1", None], ["add-if", "f2", ["list"]], ["add-if", "f3", ["list", None]],
                  ["add-if", "g", ["gte", "_.", 18], 12], ["add-if", "h", ["gte", "_.", 18], 20]], {}) == {
        "f2": [], "f3": [None], "h": 20}


def test_constant_values_are_not_shared_between_targets():
    out = run({"default": [["copy", "_id"], ["add", "tags", ["list", "a"]]]}, [{"_id": "1"}, {"_id": "2"}])
    assert out == [{"_id": "1", "tags": ["a"]}, {"_id": "2", "tags": ["a"]}]


def test_copy_rename_remove():
    source = {"_id": "1", "a": 1, "ab": 2, "b": 3, "ba": 4, "xd": 5}
    assert steps([["copy", "*"]], source) == source
    assert steps([["copy", "a*", "ab*"]], source) == {"a": 1}
    assert steps([["copy", ["list", "a*", "b*"], ["list", "ab*", "ba*"]]], source) == {"a": 1, "b": 3}
    assert steps([["copy", "?d"], ["copy", "nope"]], source) == {"xd": 5}
    assert steps([["copy", "*", "_id"]], {"_id": "1", "a": 1}) == {"a": 1}
    assert steps([["rename", "a", "z"], ["rename", "nope", "y"]], source) == {"z": 1}
    assert steps([["rename", "a", "z"]], {"a": None}) == {"z": None}
    assert steps([["rename", ["concat", "a", "b"], "c"]], source) == {"c": 2}
    assert steps([["copy", "*"], ["remove", "a*"], ["remove", "_id"]], source) == {"b": 3, "ba": 4, "xd": 5}


def test_filter_and_discard():
    rules = {"default": [["copy", "*"], ["filter", ["gt", "_S.age", 42]], ["add", "seen", True]]}
    entities = [{"_id": "a", "age": 50}, {"_id": "b", "age": 40}]
    assert run(rules, entities) == [{"_id": "a", "age": 50, "seen": True}]
    assert run(rules, entities, emit_filtered=True) == [
        {"_id": "a", "age": 50, "seen": True}, {"_id": "b", "age": 40, "_filtered": True}]
    assert run({"default": [["filter"], ["copy", "_id"]]}, entities, emit_filtered=True) == [
        {"_id": "a", "_filtered": True}, {"_id": "b", "_filtered": True}]
    discard = {"default": [["copy", "*"], ["discard", ["gt", "_S.age", 42]]]}
    assert run(discard, entities, emit_filtered=True) == [{"_id": "a", "age": 50}]
    assert run({"default": [["copy", "*"], ["discard"]]}, entities) == []


def test_comment_is_never_evaluated():
    assert run({"default": [["comment", ["fail!", "x"], ["add", "x", 1]], ["copy", "_id"]]}, [{"_id": "a"}]) == [
        {"_id": "a"}]


def test_if_case_case_eq_transforms():
    rules = {"default": [
        ["copy", "_id"],
        ["if", ["gt", "_S.n", 1], [["add", "big", True], ["add", "n", "_S.n"]], ["add", "big", False]],
        ["if", True, []],
        ["case", ["eq", "_S.n", 1], ["add", "k", "one"], ["eq", "_S.n", 2], [["add", "k", "two"]],
         ["add", "k", "many"]],
        ["case-eq", "_S.n", 1, ["add", "e", 1], 3, ["add", "e", 3]],
    ]}
    out = run(rules, [{"_id": "a", "n": 1}, {"_id": "b", "n": 2}, {"_id": "c", "n": 3}])
    assert out == [{"_id": "a", "big": False, "k": "one", "e": 1}, {"_id": "b", "big": True, "n": 2, "k": "two"},
                   {"_id": "c", "big": True, "n": 3, "k": "many", "e": 3}]


def test_filter_inside_if_stops_the_rule():
    rules = {"default": [["copy", "_id"], ["if", ["eq", "_S._id", "b"], ["filter"]], ["add", "x", 1]]}
    assert run(rules, [{"_id": "a"}, {"_id": "b"}]) == [{"_id": "a", "x": 1}]


def test_create_and_create_child():
    rules = {"default": [["copy", "_id"], ["create", "_S.orders"], ["filter"]]}
    assert run(rules, [{"_id": "c", "orders": [{"_id": "o1"}]}]) == [{"_id": "o1"}]
    with pytest.raises(DTLRuntimeError, match="'c'"):
        run({"default": [["copy", "_id"], ["create", ["list", {"x": 1}]]]}, [{"_id": "c"}])
    lenient = run({"default": [["copy", "_id"], ["create", ["list", {"_id": "a"}, 1, {"_id": 2}]]]}, [{"_id": "c"}],
                  id_required=False)
    assert lenient == [{"_id": "c"}, {"_id": "a"}]
    child = run({"default": [["copy", "_id"], ["create-child", "_S.o"], ["create-child", ["list", {"_id": "x"}]]]},
                [{"_id": "c", "o": [{"_id": "o1"}]}])
    assert child == [{"_id": "c", "$children": [{"_id": "o1"}, {"_id": "x"}]}]


def test_merge_and_merge_union():
    assert steps([["merge", ["list", {"a": 1, "_id": "z", "c": {"_y": 1}}, {"a": 2}, 5]]], {}) == {
        "a": 2, "c": {"_y": 1}}
    assert steps([["merge-union", ["list", {"a": 1}, {"a": 2, "b": 3}, {"a": 2}]]], {}) == {"a": [1, 2], "b": 3}


def test_make_ni():
    assert steps([["make-ni", "h", "p"]], {"p": ["z", "a", 7]}) == {"p-ni": ["~:h:a", "~:h:z"]}
    assert steps([["make-ni", "h", "p", "q"]], {"p": "x"}) == {"q": "~:h:x"}
    assert steps([["make-ni", "h", "p"]], {"p": [1]}) == {}


def test_id_checks_and_failures():
    # no _id set: the source's _id (the getting-started guide's customers-with-orders relies on it)
    assert run({"default": [["add", "x", 1]]}, [{"_id": "a"}]) == [{"_id": "a", "x": 1}]
    with pytest.raises(DTLRuntimeError, match="'a'"):
        run({"default": [["add", "_id", 5]]}, [{"_id": "a"}])
    with pytest.raises(DTLRuntimeError, match="'a'"):
        run({"default": [["add", "_id", None]]}, [{"_id": "a"}])
    assert run({"default": [["add", "_id", 5]]}, [{"_id": "a"}], id_required=False) == []
    assert run({"default": [["add", "x", 1]]}, [{"x": 0}], id_required=False) == []  # no source _id either
    with pytest.raises(DTLRuntimeError, match=r"'b'.*name is missing"):
        run({"default": [["copy", "_id"], ["if", ["is-null", "_S.name"], ["fail!", "name is missing"]]]},
            [{"_id": "a", "name": "x"}, {"_id": "b"}])
    with pytest.raises(DTLTripError):
        run({"default": [["trip!", "stop"]]}, [{"_id": "a"}])


def test_sleep_uses_the_given_sleeper():
    from dtl import compile_transform

    slept = []
    transform = compile_transform({"type": "dtl", "rules": {"default": [["copy", "_id"], ["sleep!", 2]]}})
    assert transform.run([{"_id": "a"}], sleep=slept.append) == [{"_id": "a"}]
    assert slept == [2]


def test_trigger_on():
    rules = {"default": [["copy", "_id"], ["add", "done", True]]}
    out = run(rules, [{"_id": "a", "_trigger": "go-1"}, {"_id": "b", "_trigger": "x"}, {"_id": "c"}],
              trigger_on={"key": "_trigger", "value": "go*"})
    assert out == [{"_id": "a", "done": True}, {"_id": "b", "_trigger": "x"}, {"_id": "c"}]


def test_apply_and_parent_variables():
    rules = {
        "default": [["copy", "_id"], ["add", "groups", ["apply", "group", "_S.groups"]],
                    ["add", "one", ["apply", "group", {"name": "solo"}]], ["add", "none", ["apply", "group", None]]],
        "group": [["filter", ["neq", "_S.name", "skip"]], ["add", "name", "_S.name"],
                  ["add", "members", ["apply", "member", "_S.members"]]],
        "member": [["add", "who", "_S."], ["add", "group", "_P._S.name"], ["add", "root", "_P._P._S._id"],
                   ["add", "r", "_R._S._id"]],
    }
    out = run(rules, [{"_id": "c", "groups": [{"name": "dev", "members": ["ann"]}, {"name": "skip"}]}])
    assert out == [{"_id": "c", "groups": [{"name": "dev", "members": [
        {"who": "ann", "group": "dev", "root": "c", "r": "c"}]}], "one": {"name": "solo", "members": None},
        "none": None}]


NS = {"id": "p", "namespaced_identifiers": True, "namespaces": {"identity": "foo", "property": "bar"}}


def test_namespaced_transforms():
    assert steps([["add", "age", 1], ["add", "person:age", 2], ["add", "::plain", 3], ["add", ":cur", 4],
                  ["add", "_id", "1"], ["default", ":age", 9]], {}, pipe=NS) == {
        "bar:age": 1, "person:age": 2, "plain": 3, "bar:cur": 4, "_id": "foo:1"}
    source = {"age": 36, "x:age": 37, "xyz:age": 38}
    assert steps([["copy", "age"]], source, pipe=NS) == source
    assert steps([["copy", "x*:*e", "*y*:*e"]], source, pipe=NS) == {"x:age": 37}
    assert steps([["remove", "x*:age"]], {}, target=source, pipe=NS) == {"age": 36}
    assert steps([["rename", "age", "years"]], source, pipe=NS) == {"years": 36, "x:years": 37, "xyz:years": 38}
    assert steps([["rename", "age", "z:y"]], source, pipe=NS) == {"z:y": [36, 37, 38]}
    assert steps([["rename", "x:age", "x:y"]], source, pipe=NS) == {"x:y": 37}
    assert steps([["make-ni", "s", "r", "ref"]], {"r": "a", "x:r": "b"}, pipe=NS) == {
        "ref": "~:s:a", "x:ref": "~:s:b"}
