-- error: SQL error at line 6, column 3: OVER windows that differ ((PARTITION BY bidder ORDER BY "dateTime" ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) and (PARTITION BY auction ORDER BY "dateTime" ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)) is not supported; use one window for every OVER aggregate of a SELECT (as Flink does), or compute each in its own subquery
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT bidder,
  SUM(price) OVER (PARTITION BY bidder ORDER BY `dateTime` ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS s,
  COUNT(*) OVER (PARTITION BY auction ORDER BY `dateTime` ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS n
FROM bid;
