-- error: SQL error at line 4, column 32: the OVER window ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC NULLS FIRST) is not supported; ROW_NUMBER Top-N/dedup and OVER aggregates are not planned yet
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT * FROM (SELECT auction, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rn FROM bid) WHERE rn <= 10;
