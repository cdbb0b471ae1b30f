-- error: SQL error at line 4, column 62: an OVER window ordered by auction (not a time attribute) is not supported; OVER windows on a stream are ordered by time: order by the event-time column (WATERMARK FOR auction AS ... in CREATE TABLE) or a PROCTIME() column (time attributes here: dateTime)
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT bidder, SUM(price) OVER (PARTITION BY bidder ORDER BY auction
  ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS total FROM bid;
