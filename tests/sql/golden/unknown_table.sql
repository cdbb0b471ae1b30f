-- error: SQL error at line 4, column 21: unknown table 'bids'; did you mean 'bid'? (tables: bid)
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT auction FROM bids;
