-- error: alternation (|) in PATTERN is not supported; write the pattern as a sequence of quantified variables
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT * FROM bid MATCH_RECOGNIZE (PARTITION BY auction ORDER BY `dateTime`
  MEASURES A.price AS p PATTERN (A (B | C)) DEFINE B AS B.price > A.price, C AS C.price < A.price);
