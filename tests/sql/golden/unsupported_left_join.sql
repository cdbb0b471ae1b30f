-- error: SQL error at line 4, column 39: a LEFT JOIN without time bounds between the two sides' event times (a regular outer join needs retractions) is not supported; write ON a.k = b.k AND b.ts BETWEEN
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT a.auction FROM bid a LEFT JOIN bid b ON a.auction = b.auction;
