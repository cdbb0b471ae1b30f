"""The three Nexmark views (NEXMARK.md 2.3) as SQL tables over the ``nexmark`` connector.

>>> print(ddl(events=1000).splitlines()[0])
CREATE TABLE person (
"""

from __future__ import annotations

__all__ = ["ddl"]

_COLUMNS = {
    "person": "id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, city VARCHAR, "
              "state VARCHAR, `dateTime` TIMESTAMP(3), extra VARCHAR",
    "auction": "id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, "
               "reserve BIGINT, `dateTime` TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, "
               "category BIGINT, extra VARCHAR",
    "bid": "auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, "
           "`dateTime` TIMESTAMP(3), extra VARCHAR",
}


def ddl(events: int = 0, rate: float = 10_000, generators: int = 1, out_of_order_group: int = 1,
        seed: int = 0, event_id: bool = False, kinds: tuple[str, ...] = ("person", "auction", "bid"),
        columns: dict[str, list[str]] | None = None) -> str:
    """``CREATE TABLE person/auction/bid`` over one Nexmark stream, each with Flink's watermark
    ``dateTime - INTERVAL '4' SECOND``; ``event_id=True`` adds the arrival position;
    ``columns`` declares only some columns of a view (the generator builds only those)."""
    out = []
    for kind in kinds:
        cols = _COLUMNS[kind]
        if columns and kind in columns:
            keep = set(columns[kind]) | {"dateTime"}
            cols = ", ".join(c for c in cols.split(", ") if c.split()[0].strip("`") in keep)
        cols += ", event_id BIGINT" if event_id else ""
        out.append(
            f"CREATE TABLE {kind} (\n  {cols},\n"
            "  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND\n"
            f") WITH ('connector' = 'nexmark', 'kind' = '{kind}', 'events' = '{events}', "
            f"'rate' = '{rate}', 'generators' = '{generators}', "
            f"'out-of-order-group' = '{out_of_order_group}', 'seed' = '{seed}');"
        )
    return "\n".join(out)
