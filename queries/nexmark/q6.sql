-- Nexmark q6, average selling price by seller: each auction's winning bid (the q9 join,
-- top-1 by price), then per seller the average of the winning prices of the auction and the
-- 10 before it in bid time (updating: a new winner re-computes its seller's later rows).
-- Flink cannot run it (its OVER rejects the Top-N's updates, FLINK-19059). tidal emits
-- upserts keyed by the auction, so the query also selects Q.id (Flink's sink has only
-- seller and avg_price, which no upsert sink could key).
CREATE TABLE nexmark_q6 (auction BIGINT, seller BIGINT, avg_price BIGINT)
WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q6
SELECT
    Q.id,
    Q.seller,
    AVG(Q.final) OVER
        (PARTITION BY Q.seller ORDER BY Q.`dateTime` ROWS BETWEEN 10 PRECEDING AND CURRENT ROW)
FROM (
  SELECT id, seller, final, `dateTime`
  FROM (
    SELECT A.id, A.seller, B.price AS final, B.`dateTime`,
      ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.`dateTime` ASC) AS rownum
    FROM auction A, bid B
    WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
  )
  WHERE rownum <= 1
) Q;
