CREATE TABLE bids (auction BIGINT, price BIGINT, date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '200' MILLISECOND)
WITH ('connector' = 'filesystem', 'path' = 'bids.jsonl', 'format' = 'json');

SELECT auction, window_start, window_end, COUNT(*) AS n, MAX(price) AS top
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
WHERE price > 1000
GROUP BY auction, window_start, window_end;
