"""hops, apply-hops, lookup-entity and the join plan."""

import pytest

from dtl import DTLCompileError, DTLRuntimeError, compile_expression, compile_transform
from dtl.testing import InMemoryLookup, ev, run, typed

ORDERS = {"orders": [
    {"_id": "o1", "cust": "c1", "amount": 5, "lines": [{"p": "P1"}, {"p": "P2"}], "shop": "a"},
    {"_id": "o2", "cust": "c1", "amount": 7, "lines": [{"p": "P3"}], "shop": "b"},
    {"_id": "o3", "cust": "c2", "amount": 1, "lines": [], "shop": "a"},
    {"_id": "o4", "cust": "c1", "_deleted": True},
], "products": [
    {"_id": "x1", "pid": "P1", "name": "Hammer"}, {"_id": "x2", "pid": "P2", "name": "Nails"},
    {"_id": "x3", "pid": "P3", "name": "Saw"},
]}


def test_single_dataset_join_returns_list():
    hops = ["hops", {"datasets": ["orders o"], "where": ["eq", "_S._id", "o.cust"]}]
    assert ev(["path", "_id", hops], {"_id": "c1"}, datasets=ORDERS) == ["o1", "o2"]
    assert ev(hops, {"_id": "nobody"}, datasets=ORDERS) == []
    assert ev(["count", hops], {"_id": "c2"}, datasets=ORDERS) == 1


def test_two_datasets_subsets_and_return():
    spec = {"datasets": ["orders o", "products p"],
            "where": [["eq", "_S._id", "o.cust"], ["eq", "o.lines.p", "p.pid"]], "return": "p.name"}
    assert ev(["sorted", ["hops", spec]], {"_id": "c1"}, datasets=ORDERS) == ["Hammer", "Nails", "Saw"]
    subset = {**spec, "subsets": {"o": ["eq", "_S.shop", "a"]}}
    assert ev(["sorted", ["hops", subset]], {"_id": "c1"}, datasets=ORDERS) == ["Hammer", "Nails"]
    both = {**spec, "return": "o,p"}
    assert ev(["path", "_id", ["hops", both]], {"_id": "c2"}, datasets=ORDERS) == []
    assert ev(["path", "_id", ["hops", {**spec, "return": "o"}]], {"_id": "c1"}, datasets=ORDERS) == ["o1", "o2"]
    template = {**spec, "return": {"order": "o._id", "product": ["upper", "p.name"]}}
    assert ev(["hops", template], {"_id": "c2"}, datasets=ORDERS) == []
    assert ev(["sorted", "_.product", ["hops", template]], {"_id": "c1"}, datasets=ORDERS)[0] == {
        "order": "o1", "product": "HAMMER"}


def test_filters_and_functional_joins():
    data = {"b": [{"_id": "B", "v": 1, "vs": [1, 3, 4, 6], "t": "x"}, {"_id": "C", "v": None, "vs": [], "t": "y"}]}
    src = {"_id": "A", "v": 1, "vs": [1, 2, 4, 5], "n": None}
    for where in (["eq", "_S.v", "b.v"], ["eq", "_S.v", "b.vs"], ["eq", "_S.vs", "b.vs"],
                  ["eq", ["+", "_S.v", 2], "b.vs"], ["eq", "b.vs", ["+", "_S.v", 2]]):
        assert ev(["count", ["hops", {"datasets": ["b b"], "where": where}]], src, datasets=data) == 1, where
    assert ev(["count", ["hops", {"datasets": ["b b"], "where": ["eq", "_S.n", "b.v"]}]], src, datasets=data) == 0
    filtered = {"datasets": ["b b"], "where": [["eq", "_S.vs", "b.vs"], ["eq", "b.t", "y"]]}
    assert ev(["count", ["hops", filtered]], src, datasets=data) == 0


def test_composite_keys_with_tuples():
    data = {"r": [{"_id": "r1", "y": 2020, "m": 1}, {"_id": "r2", "y": 2020, "m": 2}]}
    where = ["eq", ["tuples", "_S.y", "_S.m"], ["tuples", "r.y", "r.m"]]
    assert ev(["path", "_id", ["hops", {"datasets": ["r r"], "where": where}]], {"y": 2020, "m": 2},
              datasets=data) == ["r2"]


PEOPLE = {"Person": [
    {"_id": "p2", "g": "f", "kids": ["p4", "p5"], "hobbies": ["h1"]}, {"_id": "p3", "g": "m", "kids": ["p6"]},
    {"_id": "p4", "g": "f", "hobbies": ["h3"]}, {"_id": "p5", "g": "m"}, {"_id": "p6", "g": "f"}],
    "Hobby": [{"_id": "h1", "name": "Chess"}, {"_id": "h3", "name": "Archery"}]}


def test_recursion_and_chaining():
    spec = {"datasets": ["Person p"], "where": [["eq", "_S.kids", "p._id"], ["eq", "p.g", "f"]], "recurse": True}
    root = {"_id": "root", "kids": ["p2", "p3"]}
    assert ev(["path", "_id", ["hops", spec]], root, datasets=PEOPLE) == ["root", "p2", "p4"]
    assert ev(["path", "_id", ["hops", {**spec, "exclude_root": True}]], root, datasets=PEOPLE) == ["p2", "p4"]
    assert ev(["path", "_id", ["hops", {**spec, "max_depth": 1}]], root, datasets=PEOPLE) == ["root", "p2"]
    chained = ["hops", spec, {"datasets": ["Hobby h"], "where": ["eq", "_S.hobbies", "h._id"], "return": "h.name"}]
    assert ev(["sorted", chained], root, datasets=PEOPLE) == ["Archery", "Chess"]


def test_apply_hops_and_lookup_entity():
    rules = {"default": [["copy", "_id"], ["add", "orders", ["sorted", "_.amount", ["apply-hops", "order", {
        "datasets": ["orders o"], "where": ["eq", "_S._id", "o.cust"]}]]]],
             "order": [["filter", ["gt", "_S.amount", 5]], ["add", "amount", "_S.amount"], ["add", "c", "_P._S._id"]]}
    assert run(rules, [{"_id": "c1"}], datasets=ORDERS) == [{"_id": "c1", "orders": [{"amount": 7, "c": "c1"}]}]
    data = {"t": [{"_id": "a", "l": "A"}, {"_id": "d", "_deleted": True}]}
    assert ev(["path", "l", ["lookup-entity", "t", "_S.k"]], {"k": "a"}, datasets=data) == "A"
    assert ev(["lookup-entity", "t", "d"], datasets=data) is None
    assert ev(["lookup-entity", "t", ["list", "a", "zz"]], datasets=data) == [{"_id": "a", "l": "A"}]


def test_hops_without_lookup_is_a_runtime_error():
    with pytest.raises(DTLRuntimeError, match="lookup"):
        compile_expression(["hops", {"datasets": ["x x"], "where": ["eq", "_S.a", "x.a"]}]).evaluate({})


@pytest.mark.parametrize(("spec", "message"), [
    ({"datasets": ["x x"]}, 'alias "x" is not joined'),
    ({"datasets": ["x x", "y y"], "where": ["eq", "_S.a", "x.a"]}, 'alias "y" is not joined'),
    ({"datasets": ["x"], "where": ["eq", "_S.a", "x.a"]}, "<dataset-id> <alias>"),
    ({"datasets": ["x x"], "where": ["eq", "x.a", "x.b"]}, "not joined"),
    ({"datasets": ["x x"], "where": ["eq", "_S.a", "x.a"], "recurse": True, "return": "x"}, "recurse"),
    ("x", "must be a dict"),
])
def test_hops_compile_errors(spec, message):
    with pytest.raises(DTLCompileError, match=message):
        compile_expression(["hops", spec])


def test_apply_of_a_rule_with_hops_is_a_compile_error():
    rules = {"default": [["copy", "_id"], ["add", "x", ["apply", "r", "_S."]]],
             "r": [["add", "h", ["hops", {"datasets": ["x x"], "where": ["eq", "_S.a", "x.a"]}]]]}
    with pytest.raises(DTLCompileError, match=r"rules\.default\[1\]\[2\].*apply-hops"):
        compile_transform({"type": "dtl", "rules": rules})


def test_join_plan():
    rules = {"default": [
        ["copy", "_id"],
        ["add", "p", ["hops", {"datasets": ["orders o", "products p"],
                               "where": [["eq", "_S._id", "o.cust"], ["eq", ["lower", "o.lines.p"], "p.pid"]],
                               "subsets": {"o": ["eq", "_S.shop", "a"]}}]],
        ["add", "l", ["apply-hops", "line", {"datasets": ["orders o"], "where": ["eq", "_S._id", "o.cust"]}]],
        ["add", "u", ["hops", {"datasets": ["untracked u"], "where": ["eq", "_S.x", "u.x"],
                               "track-dependencies": False}]],
        ["add", "e", ["lookup-entity", "codes", "_S.code"]],
    ], "line": [["add", "h", ["hops", {"datasets": ["Hobby h"], "where": ["eq", "_S.lines.p", "h.pid"]}]]]}
    transform = compile_transform({"type": "dtl", "rules": rules})
    plan = transform.join_plan
    assert plan.datasets == {"orders", "products", "Hobby"}
    assert transform.datasets_read == {"orders", "products", "Hobby", "untracked", "codes"}
    edges = {(e.dataset, e.index.expression if isinstance(e.index.expression, str) else str(e.index.expression),
              e.parent, str(e.parent_index.expression)) for e in plan.edges}
    assert edges == {
        ("orders", "_S.cust", None, "_S._id"),
        ("products", "_S.pid", "orders", "['lower', '_S.lines.p']"),
        ("Hobby", "_S.pid", "orders", "_S.lines.p"),
    }
    indexes = plan.indexes()
    assert {i.key for i in indexes[None]} == {'"_S._id"'}
    assert {i.key for i in indexes["orders"]} == {'"_S.cust"', '["lower","_S.lines.p"]', '"_S.lines.p"', '"_S.shop"'}

    lookup = InMemoryLookup({"source": typed([{"_id": "c1"}, {"_id": "c2"}]), **typed(ORDERS)})
    product = typed({"_id": "x9", "pid": "p2"})
    assert plan.dependents("products", product, lookup, "source") == ["c1"]
    assert plan.dependents("orders", typed(ORDERS["orders"][2]), lookup, "source") == ["c2"]
    assert plan.dependents("untracked", {"_id": "u", "x": 1}, lookup, "source") == []
    assert plan.edges[0].index.values(typed({"cust": ["a", None, "b"]})) == ["a", "b"]


def test_recursive_join_plan_has_a_self_edge():
    spec = {"datasets": ["Person p"], "where": ["eq", "_S.kids", "p._id"], "recurse": True}
    plan = compile_transform({"type": "dtl", "rules": {"default": [["add", "x", ["hops", spec]]]}}).join_plan
    assert {e.parent for e in plan.edges} == {None, "Person"}
    lookup = InMemoryLookup({"src": typed([{"_id": "root", "kids": ["p2"]}]), **typed(PEOPLE)})
    assert plan.dependents("Person", typed({"_id": "p4"}), lookup, "src") == ["root"]
