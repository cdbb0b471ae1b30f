-- error: SQL error at line 4, column 34: ORDER BY price, which is not a column of the SELECT list is not supported; order by one of auction, or select it
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT auction FROM bid ORDER BY price;
