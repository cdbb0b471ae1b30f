"""Flink SQL as a sqlglot dialect.

sqlglot has no Flink dialect; RisingWave's (PostgreSQL-based) already parses ``CREATE TABLE
... (..., WATERMARK FOR c AS c - INTERVAL '4' SECOND) WITH (...)``. On top of it this adds
what Flink scripts use and RisingWave does not:

- back-quoted identifiers (```dateTime```);
- windowing table-valued functions ``TUMBLE|HOP|CUMULATE|SESSION(TABLE t, DESCRIPTOR(c),
  INTERVAL ...)`` (also with named arguments ``DATA => TABLE t, TIMECOL => DESCRIPTOR(c)``),
  parsed into :class:`WindowTVF`;
- the legacy group windows ``GROUP BY SESSION(c, INTERVAL ...)`` (SESSION is a keyword in
  PostgreSQL);
- ``MATCH_RECOGNIZE (... PATTERN (...) WITHIN INTERVAL ... DEFINE ...)``
  (:func:`tidal.sql.match_recognize.parse_match_recognize`);
- the column types ``ROW<name TYPE, ...>`` and ``ROW(name TYPE, ...)``, parsed as sqlglot's
  STRUCT (``ROW(1, 'a')`` in an expression stays a row constructor).

>>> import sqlglot
>>> q = sqlglot.parse_one("SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), "
...                       "INTERVAL '10' SECOND))", read=Flink)
>>> q.find(WindowTVF).name
'TUMBLE'
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp
from sqlglot.dialects.risingwave import RisingWave
from sqlglot.parsers.risingwave import RisingWaveParser
from sqlglot.tokens import TokenType

from tidal.sql.temporal import FLINK_SIGNATURES

__all__ = ["Flink", "WindowTVF"]

TVF_NAMES = ("TUMBLE", "HOP", "CUMULATE", "SESSION")


class WindowTVF(exp.Expression, exp.Func):
    """``TUMBLE|HOP|CUMULATE|SESSION(TABLE t, DESCRIPTOR(col), INTERVAL ..., ...)``.

    ``this`` is the input (a table or a subquery), ``column`` the time column, ``expressions``
    the intervals in Flink's order (HOP: slide, size; CUMULATE: step, size), ``partition``
    SESSION's optional ``PARTITION BY`` columns.
    """

    arg_types = {"this": True, "kind": True, "column": True, "expressions": True,
                 "partition": False}

    @property
    def name(self) -> str:
        return self.args["kind"]


def _parse_window_function(self: Any, kind: str) -> exp.Expr:
    """After ``KIND(``: a windowing TVF when the first argument is ``TABLE t`` or names
    ``DATA =>``; otherwise a legacy group window / plain call with ordinary arguments."""
    named = self._curr is not None and self._next is not None and \
        self._next.token_type == TokenType.FARROW
    if not (named or (self._curr is not None and self._curr.token_type == TokenType.TABLE)):
        args = self._parse_csv(self._parse_lambda)
        return exp.Anonymous(this=kind, expressions=args)
    source = column = None
    partition: list[exp.Expr] = []
    intervals: list[exp.Expr] = []
    while True:
        if self._curr is not None and self._next is not None and \
                self._next.token_type == TokenType.FARROW:
            self._advance(2)  # a named argument: DATA =>, TIMECOL =>, SIZE =>, ...
        if self._match(TokenType.TABLE):
            if self._curr is not None and self._curr.token_type == TokenType.L_PAREN:
                self._advance()
                source = exp.Subquery(this=self._parse_select())
                self._match_r_paren()
                alias = self._parse_table_alias()
                if alias is not None:
                    source.set("alias", alias)
            else:
                source = self._parse_table_parts()
            if self._match(TokenType.PARTITION_BY) or self._match_text_seq("PARTITION", "BY"):
                partition.append(self._parse_column())
                while self._curr is not None and self._curr.token_type == TokenType.COMMA \
                        and self._next is not None and self._next.token_type == TokenType.VAR \
                        and self._next.text.upper() != "DESCRIPTOR":
                    self._advance()
                    partition.append(self._parse_column())
        elif self._match_text_seq("DESCRIPTOR"):
            self._match_l_paren()
            column = self._parse_column()
            self._match_r_paren()
        else:
            intervals.append(self._parse_bitwise())
        if not self._match(TokenType.COMMA):
            break
    return self.expression(WindowTVF(this=source, kind=kind, column=column,
                                     expressions=intervals, partition=partition))


def _row_as_struct(parser: Any, ahead: int) -> None:
    """Retag the token ``ahead`` of the current one as STRUCT when it is ``ROW`` followed by
    ``<`` or ``(``: sqlglot parses ``STRUCT<...>``/``STRUCT(...)`` types, not Flink's ROW."""
    tokens, i = parser._tokens, parser._index + ahead
    if i + 1 < len(tokens) and tokens[i].token_type == TokenType.ROW and \
            tokens[i + 1].token_type in (TokenType.LT, TokenType.L_PAREN):
        tokens[i].token_type = TokenType.STRUCT


class FlinkParser(RisingWaveParser):
    FUNC_TOKENS = {*RisingWaveParser.FUNC_TOKENS, TokenType.SESSION}
    FUNCTIONS = {k: v for k, v in RisingWaveParser.FUNCTIONS.items() if k not in FLINK_SIGNATURES}
    FUNCTION_PARSERS = {
        **RisingWaveParser.FUNCTION_PARSERS,
        **{k: (lambda kind: lambda self: _parse_window_function(self, kind))(k)
           for k in TVF_NAMES},
    }

    def _parse_types(self, check_func: bool = False, schema: bool = False,
                     allow_identifiers: bool = True, with_collation: bool = False) -> Any:
        if schema:  # a column's type: ROW(...) here is a type, not a row constructor
            _row_as_struct(self, 0)
        return super()._parse_types(check_func, schema, allow_identifiers, with_collation)

    def _parse_struct_types(self, type_required: bool = False) -> Any:
        _row_as_struct(self, 1)  # `name ROW<...>`: a field of a ROW type that is a ROW itself
        return super()._parse_struct_types(type_required)

    def _parse_match_recognize(self) -> exp.MatchRecognize | None:
        from tidal.sql.match_recognize import parse_match_recognize

        return parse_match_recognize(self)  # with Flink's WITHIN after PATTERN (...)


class Flink(RisingWave):
    """Flink SQL's syntax on sqlglot (see the module docstring)."""

    class Tokenizer(RisingWave.Tokenizer):
        IDENTIFIERS = ['"', "`"]
        KEYWORDS = {**RisingWave.Tokenizer.KEYWORDS, "MATCH_RECOGNIZE": TokenType.MATCH_RECOGNIZE}

    Parser = FlinkParser
