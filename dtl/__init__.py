"""DTL, the Data Transformation Language of Sesam: a compiler from DTL JSON to Python closures.

    transform = compile_transform({"type": "dtl", "rules": {"default": [["copy", "*"]]}}, pipe=pipe_config)
    entities = transform.run(batch, lookup=lookup)     # typed entities in, typed entities out
    transform.join_plan                                 # hopped datasets and joins, for dependency tracking

    expression = compile_expression(["upper", "_S.name"])
    expression.evaluate({"name": "ann"})                # "ANN"

Values are the typed values of ``storage`` (Decimal, Datetime, NI, URI, UUID, bytes, ...). Datasets are
read through the ``Lookup`` protocol (``dtl.testing.InMemoryLookup`` for tests).
"""

from ._errors import DTLCompileError, DTLError, DTLRuntimeError, DTLTripError
from ._hops import JoinEdge, JoinPlan
from ._lookup import IndexExpression, Lookup, index_key
from ._namespaces import add_namespaces, remove_namespaces
from ._transform import Expression, Transform, compile_expression, compile_transform

__all__ = [
    "DTLCompileError",
    "DTLError",
    "DTLRuntimeError",
    "DTLTripError",
    "Expression",
    "IndexExpression",
    "JoinEdge",
    "JoinPlan",
    "Lookup",
    "Transform",
    "add_namespaces",
    "compile_expression",
    "compile_transform",
    "index_key",
    "remove_namespaces",
]
