-- rows: [{"kind": "cheap", "n": 655}, {"kind": "dear", "n": 265}]
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT CASE WHEN price < 1000000 THEN 'cheap' ELSE 'dear' END AS kind, COUNT(*) AS n
FROM bid GROUP BY CASE WHEN price < 1000000 THEN 'cheap' ELSE 'dear' END HAVING COUNT(*) > 10;
