"""What SQL names refer to: tables declared with ``CREATE TABLE``, views, and streams
registered from Python with :meth:`tidal.Flow.register_table`.

A declared table becomes a source the first time a flow reads it, and every later statement
of the flow shares that one source.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import polars as pl
from sqlglot import exp

from tidal.sql.connectors import REGISTRY, TableOptions
from tidal.sql.errors import error, unsupported
from tidal.sql.expressions import interval_ms, sql_type

if TYPE_CHECKING:
    from tidal.api.stream import Stream

__all__ = ["Catalog", "TableDef", "ViewDef", "create_table_sql", "describe_type", "table_from_ddl",
           "table_from_query", "table_like"]


@dataclass
class TableDef:
    """A ``CREATE TABLE``: physical columns, computed columns, time attributes, options."""

    name: str
    columns: dict[str, pl.DataType]
    computed: dict[str, exp.Expr]
    rowtime: str | None
    delay_ms: int
    proctime: str | None
    options: dict[str, str]
    primary_key: list[str]
    temporary: bool = False
    partition_keys: list[str] = field(default_factory=list)
    """``PARTITIONED BY (...)`` columns (a filesystem sink writes ``col=value/`` directories)."""
    ddl: str | None = None
    """The ``CREATE TABLE`` text that declared it (None for ``CREATE TABLE ... AS``)."""

    @property
    def connector(self) -> str:
        return self.options["connector"]

    def table_options(self) -> TableOptions:
        return TableOptions(self.name, self.options, dict(self.columns), list(self.primary_key),
                            {"connector"}, list(self.partition_keys))


@dataclass
class ViewDef:
    """A ``CREATE VIEW name AS query``."""

    name: str
    query: exp.Expr
    temporary: bool = False
    ddl: str | None = None
    """The ``CREATE VIEW`` text that declared it (``SHOW CREATE VIEW``)."""


@dataclass
class Registered:
    """A Python stream registered as a table."""

    name: str
    stream: Stream


@dataclass
class Catalog:
    """Names of one SQL session."""

    entries: dict[str, TableDef | ViewDef | Registered] = field(default_factory=dict)

    def names(self) -> list[str]:
        return sorted(self.entries)

    def get(self, name: str, node: exp.Expr | None = None) -> TableDef | ViewDef | Registered:
        entry = self.entries.get(name)
        if entry is not None:
            return entry
        from tidal.plan import did_you_mean

        hint = did_you_mean(name, list(self.entries))
        if not hint:
            lower = [n for n in self.entries if n.lower() == name.lower()]
            hint = f"; did you mean {lower[0]!r}? (names are case-sensitive)" if lower else ""
        known = ", ".join(self.names()) or "none; declare one with CREATE TABLE"
        raise error(f"unknown table {name!r}{hint} (tables: {known})", node)

    def add(self, entry: TableDef | ViewDef | Registered, if_not_exists: bool = False,
            replace: bool = False, node: exp.Expr | None = None) -> None:
        if entry.name in self.entries and not replace:
            if if_not_exists:
                return
            raise error(f"table {entry.name!r} already exists; DROP it first or use "
                        "CREATE ... IF NOT EXISTS", node)
        self.entries[entry.name] = entry

    def drop(self, name: str, if_exists: bool, node: exp.Expr | None = None) -> None:
        if name not in self.entries:
            if if_exists:
                return
            self.get(name, node)
        self.entries.pop(name, None)


def table_from_ddl(node: exp.Create) -> TableDef:
    """A :class:`TableDef` from a parsed ``CREATE TABLE``."""
    schema = node.this
    if not isinstance(schema, exp.Schema):
        raise unsupported("CREATE TABLE without a column list (CREATE TABLE ... LIKE)", node)
    name = schema.this.name
    columns: dict[str, pl.DataType] = {}
    computed: dict[str, exp.Expr] = {}
    rowtime, delay, proctime, pk = None, 0, None, []
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            col = item.name
            comp = [c.kind for c in item.constraints
                    if isinstance(c.kind, exp.ComputedColumnConstraint)]
            if comp:
                expr = comp[0].this
                if isinstance(expr, exp.Anonymous) and expr.name.upper() == "PROCTIME":
                    proctime = col
                else:
                    computed[col] = expr
            elif item.kind is None:
                raise error(f"column {col!r} of {name!r} has no type", item)
            else:
                columns[col] = sql_type(item.kind)
                if any(isinstance(c.kind, exp.PrimaryKeyColumnConstraint) for c in item.constraints):
                    pk = [col]
        elif isinstance(item, exp.WatermarkColumnConstraint):
            rowtime = item.this.name
            delay = _watermark_delay(item, rowtime)
        elif isinstance(item, exp.PrimaryKey):
            pk = [e.name for e in item.expressions]
        else:
            raise unsupported(f"the table element {item.sql()}", item)
    if rowtime is not None:
        if rowtime not in columns and rowtime not in computed:
            raise error(f"WATERMARK FOR {rowtime}: {name!r} has no column {rowtime!r}", node)
    options, temporary, partition_keys = _properties(node, name, columns, computed)
    return TableDef(name, columns, computed, rowtime, delay, proctime, options, pk, temporary,
                    partition_keys)


def table_from_query(node: exp.Create, columns: dict[str, pl.DataType],
                     primary_key: list[str]) -> TableDef:
    """The :class:`TableDef` of ``CREATE TABLE name WITH (...) AS query`` whose query gives
    ``columns`` (an updating query's upsert key becomes the ``primary_key``)."""
    name = node.this.name
    options, temporary, partition_keys = _properties(node, name, columns, {})
    return TableDef(name, columns, {}, None, 0, None, options, primary_key, temporary,
                    partition_keys)


def table_like(node: exp.Create, base: TableDef) -> TableDef:
    """The :class:`TableDef` of ``CREATE TABLE name [WITH (...)] LIKE base``: ``base``'s
    columns, time attributes and key, with its options overwritten by those given (Flink's
    default, ``INCLUDING ALL OVERWRITING OPTIONS``)."""
    name = node.this.name
    options, temporary, partition_keys = _properties(
        node, name, base.columns, base.computed, base.options, base.partition_keys)
    return replace(base, name=name, options=options, temporary=temporary,
                   partition_keys=partition_keys, ddl=None)


def _properties(node: exp.Create, name: str, columns: dict[str, pl.DataType],
                computed: dict[str, exp.Expr], inherited: dict[str, str] | None = None,
                partitions: list[str] | None = None) -> tuple[dict[str, str], bool, list[str]]:
    """The ``WITH (...)`` options (over ``inherited`` ones), ``TEMPORARY`` and ``PARTITIONED
    BY`` keys of a CREATE TABLE; the connector must be one tidal has."""
    options: dict[str, str] = dict(inherited or {})
    temporary = False
    partition_keys: list[str] = list(partitions or [])
    for prop in (node.args.get("properties") or exp.Properties(expressions=[])).expressions:
        if isinstance(prop, exp.LikeProperty):
            continue
        if isinstance(prop, exp.TemporaryProperty):
            temporary = True
        elif isinstance(prop, exp.PartitionedByProperty):
            partition_keys = _partition_keys(prop, name, columns, computed)
        elif isinstance(prop, exp.Property):
            key = prop.this.name if isinstance(prop.this, exp.Expr) else str(prop.this)
            value = prop.args["value"]
            options[key] = value.name if isinstance(value, exp.Expr) else str(value)
    if "connector" not in options:
        raise error(f"CREATE TABLE {name}: say where its rows come from with WITH ('connector' = "
                    f"...); connectors: {', '.join(sorted(REGISTRY))}", node)
    if options["connector"] not in REGISTRY:
        from tidal.plan import did_you_mean

        c = options["connector"]
        raise unsupported(f"the connector {c!r}", node,
                          f"use one of {', '.join(sorted(REGISTRY))}{did_you_mean(c, list(REGISTRY))}")
    return options, temporary, partition_keys


def create_table_sql(t: TableDef) -> str:
    """A ``CREATE TABLE`` statement that declares ``t`` again (``SHOW CREATE TABLE``): its
    own DDL when it was declared with one, else its columns, key and options."""
    if t.ddl is not None:
        return t.ddl
    items = [f"  `{c}` {describe_type(d)}" for c, d in t.columns.items()]
    if t.primary_key:
        items.append(f"  PRIMARY KEY ({', '.join(f'`{k}`' for k in t.primary_key)}) NOT ENFORCED")
    head = f"CREATE {'TEMPORARY ' * t.temporary}TABLE `{t.name}` ("
    tail = ")"
    if t.partition_keys:
        tail += f"\nPARTITIONED BY ({', '.join(f'`{k}`' for k in t.partition_keys)})"
    options = ",\n".join(f"  '{k}' = '{_quoted(v)}'" for k, v in t.options.items())
    return "\n".join([head, ",\n".join(items), f"{tail} WITH (", options, ")"])


def _quoted(text: str) -> str:
    return text.replace("'", "''")


def _partition_keys(prop: exp.PartitionedByProperty, table: str, columns: dict[str, pl.DataType],
                    computed: dict[str, exp.Expr]) -> list[str]:
    """The columns of ``PARTITIONED BY (a, b)``, each a physical column of the table."""
    items = prop.this.expressions if isinstance(prop.this, exp.Schema) else [prop.this]
    keys = []
    for item in items:
        if not isinstance(item, exp.Identifier | exp.Column):
            raise unsupported(f"PARTITIONED BY {item.sql()}", prop,
                              "partition by columns of the table: PARTITIONED BY (dt, hm)")
        if item.name not in columns:
            from tidal.plan import did_you_mean

            what = "a computed column" if item.name in computed else "not a column"
            raise error(f"PARTITIONED BY {item.name}: {item.name!r} is {what} of {table!r}"
                        f"{did_you_mean(item.name, list(columns))}; partition by physical "
                        f"columns ({', '.join(columns)})", prop)
        keys.append(item.name)
    return keys


def _watermark_delay(item: exp.WatermarkColumnConstraint, rowtime: str) -> int:
    e = item.expression
    if isinstance(e, exp.Column) and e.name == rowtime:
        return 0
    if isinstance(e, exp.Sub) and isinstance(e.this, exp.Column) and e.this.name == rowtime:
        return interval_ms(e.expression)
    raise unsupported(f"the watermark expression {e.sql()}", item,
                      f"write WATERMARK FOR {rowtime} AS {rowtime} - INTERVAL 'n' SECOND")


def describe_type(dtype: pl.DataType) -> str:
    """The SQL name of a Polars type (for DESCRIBE)."""
    names: dict[Any, str] = {pl.Int8: "TINYINT", pl.Int16: "SMALLINT", pl.Int32: "INT",
                             pl.Int64: "BIGINT", pl.Float32: "FLOAT", pl.Float64: "DOUBLE",
                             pl.String: "STRING", pl.Boolean: "BOOLEAN", pl.Date: "DATE",
                             pl.Binary: "BYTES", pl.UInt32: "BIGINT", pl.UInt64: "DECIMAL(20, 0)"}
    if isinstance(dtype, pl.Decimal):
        return f"DECIMAL({dtype.precision}, {dtype.scale})"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMP_LTZ(3)" if dtype.time_zone else "TIMESTAMP(3)"
    if isinstance(dtype, pl.Struct):  # Flink's spelling: ROW<`id` BIGINT, `name` STRING>
        return "ROW<" + ", ".join(f"`{f.name}` {describe_type(f.dtype)}" for f in dtype.fields) + ">"
    if isinstance(dtype, pl.List):
        return f"ARRAY<{describe_type(dtype.inner)}>"
    if isinstance(dtype, pl.Map):
        return f"MAP<{describe_type(dtype.key)}, {describe_type(dtype.value)}>"
    return names.get(type(dtype), str(dtype))
