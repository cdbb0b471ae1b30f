-- error: SQL error at line 4, column 34: ORDER BY in a continuous query is not supported; for Top-N per window use GROUP BY over a window TVF
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT auction FROM bid ORDER BY price;
