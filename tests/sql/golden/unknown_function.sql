-- error: SQL error at line 4, column 8: the function NO_SUCH_FN is not supported; register it with flow.register_function('no_such_fn', fn)
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
SELECT no_such_fn(price) FROM bid;
