-- error: SQL error at line 4, column 17: ROW_NUMBER() OVER (...) AS rn without a WHERE rn <= N on it in the enclosing query is not supported; select from it with WHERE rn <= N (Top-N) or = 1 (deduplication)
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT auction, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rn FROM bid;
