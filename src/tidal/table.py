"""Reference tables for ``stream.lookup(table, on=...)``: ``td.table.from_frame(df)``,
``td.table.from_file("ref.parquet")``, ``td.table.from_sqlite("ref.db", "SELECT ...")``,
``td.table.from_postgres(dsn, "SELECT ...")``.

See :mod:`tidal.api.joins` and docs/joins.md.
"""

from tidal.api.joins import Table, from_file, from_frame, from_postgres, from_sqlite

__all__ = ["Table", "from_file", "from_frame", "from_postgres", "from_sqlite"]
