-- error: SQL error at line 4, column 8: unknown column 'datetime'; did you mean 'dateTime'? (available: auction, bidder, price, dateTime)
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT datetime FROM bid;
