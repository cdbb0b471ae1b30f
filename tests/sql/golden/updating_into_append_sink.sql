-- error: SQL error at line 5, column 13: INSERT INTO out: the query's result is updating (a GROUP BY without a window) and the 'filesystem' connector can only append; write it to a 'sqlite' table with a PRIMARY KEY
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
CREATE TABLE out (auction BIGINT, n BIGINT) WITH ('connector' = 'filesystem', 'path' = 'x.jsonl', 'format' = 'json');
INSERT INTO out SELECT auction, COUNT(*) FROM bid GROUP BY auction;
