-- error: SQL error at line 5, column 11: a LEFT JOIN of window TVFs (an outer window join) is not supported; join the windows with an inner JOIN
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT L.auction FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND)) L
LEFT JOIN TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND)) R
ON L.auction = R.auction AND L.window_start = R.window_start AND L.window_end = R.window_end;
