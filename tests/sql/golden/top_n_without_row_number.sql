-- error: SQL error at line 4, column 8: a Top-N result without its key columns (the PARTITION BY columns, and the row number when N > 1: auction, rn) is not supported; select them (and PARTITION BY columns, not expressions) so each row replaces the row of its key
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT auction, price FROM (SELECT auction, price, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rn FROM bid) WHERE rn <= 10;
