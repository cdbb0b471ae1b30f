-- error: SQL error at line 4, column 8: an OVER aggregate over an updating result that deletes rows is not supported; compute it over an input that only upserts: a Top-N, a deduplication, or a GROUP BY of append-only rows
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT bidder, SUM(n) OVER (PARTITION BY bidder ORDER BY t) AS running
FROM (SELECT bidder, COUNT(*) AS n, MAX(`dateTime`) AS t
      FROM (SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rn
                           FROM bid) WHERE rn = 1)
      GROUP BY bidder);
