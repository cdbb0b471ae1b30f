-- error: MATCH_RECOGNIZE ORDER BY price: it must be the event time attribute of the input (time attributes here: dateTime)
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT * FROM bid MATCH_RECOGNIZE (PARTITION BY auction ORDER BY price
  MEASURES A.price AS p PATTERN (A B) DEFINE B AS B.price > A.price);
