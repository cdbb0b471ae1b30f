-- error: SQL error at line 5, column 41: TUMBLE(... DESCRIPTOR(price) ...): column 'price' is not a time attribute, so its windows could never be known complete; declare it with WATERMARK FOR price AS price - INTERVAL '5' SECOND in CREATE TABLE, or use PROCTIME() (time attributes here: dateTime)
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT window_start, COUNT(*) AS n
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(price), INTERVAL '10' SECOND))
GROUP BY window_start, window_end;
