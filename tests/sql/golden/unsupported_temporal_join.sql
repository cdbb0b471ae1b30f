-- error: SQL error at line 6, column 37: the event-time temporal join needs a PRIMARY KEY on the versioned table 'side'; declare PRIMARY KEY (...) NOT ENFORCED
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
CREATE TABLE side (k BIGINT, v STRING, t TIMESTAMP(3), WATERMARK FOR t AS t)
  WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SELECT b.auction FROM bid AS b JOIN side FOR SYSTEM_TIME AS OF b.`dateTime` AS s ON b.auction = s.k;
