-- error: SQL error: temporal and lookup joins (FOR SYSTEM_TIME AS OF) is not supported
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT b.auction FROM bid AS b JOIN side FOR SYSTEM_TIME AS OF b.p AS s ON b.auction = s.k;
