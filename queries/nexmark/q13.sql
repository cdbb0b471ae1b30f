-- Nexmark q13, bounded side-input join: each bid looked up by processing time in a static table
-- side_input(key, value) = (i, 'i') for i < 10000 (append).
CREATE TABLE side_input (`key` BIGINT, `value` AS CAST(`key` AS STRING))
WITH ('connector' = 'datagen', 'number-of-rows' = '10000',
      'fields.key.kind' = 'sequence', 'fields.key.start' = '0', 'fields.key.end' = '9999');

CREATE TABLE nexmark_q13 (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3), `value` VARCHAR)
WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q13
SELECT B.auction, B.bidder, B.price, B.`dateTime`, S.`value`
FROM (SELECT *, PROCTIME() AS p_time FROM bid) B
JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S
ON mod(B.auction, 10000) = S.`key`;
