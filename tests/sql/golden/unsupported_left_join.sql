-- error: SQL error at line 4, column 39: LEFT JOIN is not supported; only inner joins are planned
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT a.auction FROM bid a LEFT JOIN bid b ON a.auction = b.auction;
