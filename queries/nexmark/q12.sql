-- Nexmark q12, processing-time windows: bids per bidder per 10 s of processing time (nondeterministic).
CREATE TABLE nexmark_q12 (bidder BIGINT, bid_count BIGINT, starttime TIMESTAMP(3), endtime TIMESTAMP(3))
WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q12
SELECT B.bidder, count(*) AS bid_count, B.window_start AS starttime, B.window_end AS endtime
FROM TABLE(TUMBLE(TABLE (SELECT *, PROCTIME() AS p_time FROM bid) AS B, DESCRIPTOR(p_time), INTERVAL '10' SECOND)) AS B
GROUP BY B.bidder, B.window_start, B.window_end;
