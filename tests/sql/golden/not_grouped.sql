-- error: SQL error at line 4, column 17: column 'bidder' is neither in GROUP BY nor inside an aggregate
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT auction, bidder, COUNT(*) FROM bid GROUP BY auction;
