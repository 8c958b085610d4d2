"""Math functions."""

import pytest

from dtl.testing import ev


@pytest.mark.parametrize(("expr", "expected"), [
    (["+", 10, 3], 13), (["+", 10, ["list", 10, 20]], 20), (["+", None, 1], None), (["+", "a", 1], None),
    (["-", 10, 12], -2), (["*", ["list", 2.3, 14], 2], 4.6), (["/", 10, 20], "~f0.5"), (["/", 5, 0], None),
    (["/", 1.0, 4], 0.25), (["%", 5, 3], 2), (["%", 5, 0], None), (["^", 5, 2], 25), (["^", 2, -1], 0.5),
    (["+", "~f0.1", "~f0.2"], "~f0.3"), (["+", 1.5, "~f1.5"], "~f3.0"), (["*", 2, 1.5], 3.0),
    (["plus", 10, ["list", 1, "a", 2]], [11, 12]), (["plus", 10, 10], 20),
    (["minus", 1, ["list", 1, 2, 3]], [0, 1, 2]), (["minus", 10, 12], 2),
    (["multiply", 2, ["list", 2, 4]], [4, 8]), (["divide", 2, ["list", 2, 4]], ["~f1", "~f2"]),
    (["divide", ["list", 2, 8], 3], "~f1.5"), (["mod", 2, ["list", 2, 5]], [0, 1]),
    (["pow", 2, ["list", 2, 5]], [4, 25]),
    (["abs", ["list", -2, 4, -2.5, "~f-1.5"]], [2, 4, 2.5, "~f1.5"]),
    (["round", ["list", 2.2, 3.5, 4.5, -3.5, -4.5]], [2, 4, 4, -4, -4]),
    (["round", 1, ["list", 2.25, 4.778, 6, "~f1.25"]], [2.2, 4.8, 6, "~f1.2"]),
    (["ceil", 1, 2.2], 2.2), (["ceil", 2.2], 3), (["ceil", 2, 2.299], 2.3),
    (["floor", ["list", 2.2, -2.2]], [2, -3]), (["floor", 2, 2.299], 2.29),
    (["sqrt", ["list", 4, 9.0]], [2.0, 3.0]), (["sqrt", -2], None),
    (["sin", 0.0], 0.0), (["cos", 0], 1.0), (["tan", 0], 0.0),
])
def test_math(expr, expected):
    result = ev(expr)
    if isinstance(expected, float):
        assert result == pytest.approx(expected)
    else:
        assert result == expected


def test_integer_results_stay_integers():
    assert ev(["is-integer", ["round", 2.5]]) is True
    assert ev(["is-integer", ["+", 1, 2]]) is True
    assert ev(["is-float", ["*", 1, 2.0]]) is True
    assert ev(["is-decimal", ["/", 4, 2]]) is True
