-- error: SQL error at line 4, column 135: a WHERE condition on a ROW_NUMBER result other than on its row number (price > 5) is not supported; filter in the subquery, before the ROW_NUMBER
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT * FROM (SELECT auction, price, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rn FROM bid) WHERE rn <= 10 AND price > 5;
