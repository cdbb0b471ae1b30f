-- error: ALL ROWS PER MATCH is not supported; write ONE ROW PER MATCH
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT * FROM bid MATCH_RECOGNIZE (PARTITION BY auction ORDER BY `dateTime`
  MEASURES A.price AS p ALL ROWS PER MATCH PATTERN (A B) DEFINE B AS B.price > A.price);
