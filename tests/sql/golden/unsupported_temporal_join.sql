-- error: SQL error at line 4, column 66: event-time temporal joins (FOR SYSTEM_TIME AS OF a rowtime attribute, against a versioned table) is not supported; look up by processing time: add p AS PROCTIME() and join FOR SYSTEM_TIME AS OF p
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT b.auction FROM bid AS b JOIN side FOR SYSTEM_TIME AS OF b.`dateTime` AS s ON b.auction = s.k;
