-- rows: [{"window_start": "2020-01-01 00:00:00.000000", "n": 920, "top": 99568208, "lo": 101}]
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT window_start, COUNT(*) AS n, MAX(price) AS top, MIN(price) AS lo
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
GROUP BY window_start, window_end;
