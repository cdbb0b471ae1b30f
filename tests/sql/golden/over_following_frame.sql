-- error: SQL error at line 5, column 16: an OVER frame that does not end at the current row (ROWS BETWEEN 2 PRECEDING AND 1 FOLLOWING) is not supported; a stream cannot wait for later rows: end the frame AND CURRENT ROW
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT bidder, AVG(price) OVER (PARTITION BY bidder ORDER BY `dateTime`
  ROWS BETWEEN 2 PRECEDING AND 1 FOLLOWING) AS mean FROM bid;
