"""The published dataset's columns and their types, for ``publish`` (writing) and ``card``
(describing): its own module, so neither has to import the other."""

from __future__ import annotations

import pyarrow as pa

from factory.curate import FEATURE_COLUMNS
from factory.schema import ARROW_SCHEMAS, TaskInstance

__all__ = ["dataset_features"]


def dataset_features():
    """The published columns and their types: every TaskInstance column plus curation features."""
    import datasets  # noqa: PLC0415

    def value(t: pa.DataType):
        if pa.types.is_list(t):
            inner = t.value_type
            if pa.types.is_struct(inner):
                return datasets.List({f.name: value(f.type) for f in inner})
            return datasets.List(value(inner))
        return datasets.Value({pa.string(): "string", pa.int64(): "int64", pa.float64(): "float64",
                               pa.bool_(): "bool"}[t])

    cols = {f.name: value(f.type) for f in ARROW_SCHEMAS[TaskInstance]}
    for name in FEATURE_COLUMNS:
        cols[name] = datasets.Value("float64" if name == "test_s" else "string" if name == "split" else "int64")
    return datasets.Features(cols)
