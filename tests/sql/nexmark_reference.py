"""DuckDB batch answers for the Nexmark queries (NEXMARK.md 4), over the same generated events.

Windows use epoch milliseconds (``ms(t)``) so they match tidal's half-open ``[start, end)``.
"""

MS = "epoch_ms(\"dateTime\")"

REFERENCE = {
    "q0": 'SELECT auction, bidder, price, "dateTime", extra FROM bid',
    "q1": 'SELECT auction, bidder, CAST(0.908 AS DECIMAL(3,3)) * price AS price, "dateTime", extra FROM bid',
    "q2": "SELECT auction, price FROM bid WHERE auction % 123 = 0",
    "q3": """SELECT P.name, P.city, P.state, A.id FROM auction A JOIN person P ON A.seller = P.id
             WHERE A.category = 10 AND P.state IN ('OR', 'ID', 'CA')""",
    "q5": f"""
        WITH w AS (
          SELECT auction, ws, ws + 10000 AS we FROM (
            SELECT auction, ({MS} // 2000) * 2000 - k * 2000 AS ws, {MS} AS t
            FROM bid, range(0, 5) r(k)) WHERE ws <= t AND t < ws + 10000),
        c AS (SELECT auction, ws, we, count(*) AS num FROM w GROUP BY ALL),
        m AS (SELECT ws, we, max(num) AS maxn FROM c GROUP BY ALL)
        SELECT c.auction, c.num FROM c JOIN m ON c.ws = m.ws AND c.we = m.we AND c.num >= m.maxn""",
    "q7": f"""
        WITH w AS (SELECT ({MS} // 10000) * 10000 + 10000 AS wend, max(price) AS maxprice
                   FROM bid GROUP BY 1)
        SELECT b.auction, b.price AS bidder, b.bidder AS price, b."dateTime", b.extra
        FROM bid b JOIN w ON b.price = w.maxprice
        WHERE epoch_ms(b."dateTime") BETWEEN w.wend - 10000 AND w.wend""",
    "q8": f"""
        WITH p AS (SELECT id, name, ({MS} // 10000) * 10000 AS ws FROM person GROUP BY ALL),
             a AS (SELECT seller, ({MS} // 10000) * 10000 AS ws FROM auction GROUP BY ALL)
        SELECT p.id, p.name, make_timestamp(p.ws * 1000) AS stime FROM p JOIN a
          ON p.id = a.seller AND p.ws = a.ws""",
    # q10's partition columns, from DATE_FORMAT(dateTime, 'yyyy-MM-dd') and (..., 'HH:mm')
    "q10": """SELECT auction, bidder, price, "dateTime", extra, strftime("dateTime", '%Y-%m-%d') AS dt,
                     strftime("dateTime", '%H:%M') AS hm FROM bid""",
    "q11": f"""
        WITH o AS (SELECT bidder, {MS} AS t,
                          CASE WHEN {MS} - lag({MS}) OVER (PARTITION BY bidder ORDER BY {MS})
                               <= 10000 THEN 0 ELSE 1 END AS new FROM bid),
             s AS (SELECT bidder, t, sum(new) OVER (PARTITION BY bidder ORDER BY t
                   ROWS UNBOUNDED PRECEDING) AS sid FROM o)
        SELECT bidder, count(*) AS bid_count, make_timestamp(min(t) * 1000) AS starttime,
               make_timestamp((max(t) + 10000) * 1000) AS endtime
        FROM s GROUP BY bidder, sid""",
    "q13": """
        WITH side_input AS (SELECT i AS key, CAST(i AS VARCHAR) AS value FROM range(10000) t(i))
        SELECT B.auction, B.bidder, B.price, B."dateTime", S.value
        FROM bid B JOIN side_input S ON B.auction % 10000 = S.key""",
    "q14": """
        SELECT auction, bidder, CAST(0.908 AS DECIMAL(3,3)) * price AS price,
          CASE WHEN hour("dateTime") BETWEEN 8 AND 18 THEN 'dayTime'
               WHEN hour("dateTime") <= 6 OR hour("dateTime") >= 20 THEN 'nightTime'
               ELSE 'otherTime' END AS bidTimeType,
          "dateTime", extra, length(extra) - length(replace(extra, 'c', '')) AS c_counts
        FROM bid WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000""",
    "q15": """
        SELECT strftime("dateTime", '%Y-%m-%d') AS day, count(*) AS total_bids,
          count(*) FILTER (WHERE price < 10000), count(*) FILTER (WHERE price >= 10000 AND price < 1000000),
          count(*) FILTER (WHERE price >= 1000000),
          count(DISTINCT bidder), count(DISTINCT bidder) FILTER (WHERE price < 10000),
          count(DISTINCT bidder) FILTER (WHERE price >= 10000 AND price < 1000000),
          count(DISTINCT bidder) FILTER (WHERE price >= 1000000),
          count(DISTINCT auction), count(DISTINCT auction) FILTER (WHERE price < 10000),
          count(DISTINCT auction) FILTER (WHERE price >= 10000 AND price < 1000000),
          count(DISTINCT auction) FILTER (WHERE price >= 1000000)
        FROM bid GROUP BY 1""",
    "q16": """
        SELECT channel, strftime("dateTime", '%Y-%m-%d') AS day, max(strftime("dateTime", '%H:%M')),
          count(*) AS total_bids,
          count(*) FILTER (WHERE price < 10000), count(*) FILTER (WHERE price >= 10000 AND price < 1000000),
          count(*) FILTER (WHERE price >= 1000000),
          count(DISTINCT bidder), count(DISTINCT bidder) FILTER (WHERE price < 10000),
          count(DISTINCT bidder) FILTER (WHERE price >= 10000 AND price < 1000000),
          count(DISTINCT bidder) FILTER (WHERE price >= 1000000),
          count(DISTINCT auction), count(DISTINCT auction) FILTER (WHERE price < 10000),
          count(DISTINCT auction) FILTER (WHERE price >= 10000 AND price < 1000000),
          count(DISTINCT auction) FILTER (WHERE price >= 1000000)
        FROM bid GROUP BY 1, 2""",
    "q17": """
        SELECT auction, strftime("dateTime", '%Y-%m-%d') AS day, count(*),
          count(*) FILTER (WHERE price < 10000), count(*) FILTER (WHERE price >= 10000 AND price < 1000000),
          count(*) FILTER (WHERE price >= 1000000), min(price), max(price),
          CAST(sum(price) // count(price) AS BIGINT), CAST(sum(price) AS BIGINT)
        FROM bid GROUP BY 1, 2""",
    "q20": """
        SELECT b.auction, b.bidder, b.price, b.channel, b.url, b."dateTime", b.extra, a.itemName,
          a.description, a.initialBid, a.reserve, a."dateTime", a.expires, a.seller, a.category, a.extra
        FROM bid b JOIN auction a ON b.auction = a.id WHERE a.category = 10""",
    "q21": r"""
        SELECT auction, bidder, price, channel,
          CASE lower(channel) WHEN 'apple' THEN '0' WHEN 'google' THEN '1' WHEN 'facebook' THEN '2'
               WHEN 'baidu' THEN '3'
               ELSE nullif(regexp_extract(url, '(&|^)channel_id=([^&]*)', 2), '') END
        FROM bid
        WHERE lower(channel) IN ('apple', 'google', 'facebook', 'baidu')
           OR regexp_matches(url, '(&|^)channel_id=([^&]*)')""",
    "q22": """
        SELECT auction, bidder, price, channel, split_part(url, '/', 4), split_part(url, '/', 5),
               split_part(url, '/', 6) FROM bid""",
    # ROW_NUMBER ties go by arrival (event_id, NEXMARK.md 4.1): q9 and q19 keep the earlier
    # bid, q18 (deduplication keeping the last row) the later
    # q4: AVG of BIGINT is a BIGINT, truncated toward zero (prices are positive)
    "q4": """
        WITH win AS (SELECT A.id, A.category, max(B.price) AS final
                     FROM auction A JOIN bid B ON A.id = B.auction
                     WHERE B."dateTime" BETWEEN A."dateTime" AND A.expires
                     GROUP BY A.id, A.category)
        SELECT category AS id, CAST(sum(final) // count(final) AS BIGINT) AS final
        FROM win GROUP BY category""",
    "q9": """
        SELECT id, itemName, description, initialBid, reserve, "dateTime", expires, seller, category,
               extra, auction, bidder, price, bid_dateTime, bid_extra FROM (
          SELECT A.*, B.auction, B.bidder, B.price, B."dateTime" AS bid_dateTime, B.extra AS bid_extra,
            row_number() OVER (PARTITION BY A.id ORDER BY B.price DESC, B."dateTime" ASC,
                               B.event_id ASC) AS rownum
          FROM auction A JOIN bid B ON A.id = B.auction
          WHERE B."dateTime" BETWEEN A."dateTime" AND A.expires)
        WHERE rownum = 1""",
    # q6: the q9 winners, then per seller an OVER average of the last 11 winners by bid time;
    # tidal orders a seller's winners with equal bid times by the auction (the upsert key)
    "q6": """
        WITH win AS (
          SELECT * FROM (
            SELECT A.id, A.seller, B.price AS final, B."dateTime",
              row_number() OVER (PARTITION BY A.id ORDER BY B.price DESC, B."dateTime" ASC,
                                 B.event_id ASC) AS rownum
            FROM auction A JOIN bid B ON A.id = B.auction
            WHERE B."dateTime" BETWEEN A."dateTime" AND A.expires)
          WHERE rownum = 1)
        SELECT id, seller, CAST(sum(final) OVER w // count(final) OVER w AS BIGINT) FROM win
        WINDOW w AS (PARTITION BY seller ORDER BY "dateTime", id
                     ROWS BETWEEN 10 PRECEDING AND CURRENT ROW)""",
    "q18": """
        SELECT auction, bidder, price, channel, url, "dateTime", extra FROM (
          SELECT *, row_number() OVER (PARTITION BY bidder, auction
                                       ORDER BY "dateTime" DESC, event_id DESC) AS rn FROM bid)
        WHERE rn = 1""",
    "q19": """
        SELECT auction, bidder, price, channel, url, "dateTime", extra, rank_number FROM (
          SELECT *, row_number() OVER (PARTITION BY auction ORDER BY price DESC, event_id ASC)
                    AS rank_number FROM bid)
        WHERE rank_number <= 10""",
}

KEYS = {"q4": ["id"], "q6": ["auction"], "q15": ["day"], "q16": ["channel", "day"], "q17": ["auction", "day"], "q9": ["id"],
        "q18": ["bidder", "auction"], "q19": ["auction", "rank_number"]}
"""Upsert keys of the updating queries."""
