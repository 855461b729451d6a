"""Mutators for JavaScript, TypeScript and Go on tree-sitter syntax trees (``docs/operators.md``).

``mutate_ts_source(source, path, language, operators, ...)`` is the entry point; the mutate
stage (``mutators.stage``) sends each covered file to the libcst engine or to this one by its
suffix (``language_of_path``).
"""

from mutators.treesitter.engine import mutate_ts_source, ts_operators
from mutators.treesitter.grammar import language_of_path
from mutators.treesitter.ops import TS_FAMILIES, TS_OPERATORS, TSOperator, ts_operator_names

__all__ = ["TS_FAMILIES", "TS_OPERATORS", "TSOperator", "language_of_path", "mutate_ts_source", "ts_operator_names",
           "ts_operators"]
