-- error: table 'fs_sink': 'partition.time-extractor.timestamp-pattern' = '$dt $hour:00' names $hour, which is not a partition column; the table is PARTITIONED BY (dt, hm): name those, e.g. '$dt $hm'
CREATE TABLE bid (auction BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark', 'events' = '1000');
CREATE TABLE fs_sink (auction BIGINT, price BIGINT, dt STRING, hm STRING) PARTITIONED BY (dt, hm) WITH (
  'connector' = 'filesystem', 'path' = 'out/', 'format' = 'csv',
  'sink.partition-commit.trigger' = 'partition-time',
  'sink.partition-commit.policy.kind' = 'success-file',
  'partition.time-extractor.timestamp-pattern' = '$dt $hour:00');
INSERT INTO fs_sink SELECT auction, price, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd'), DATE_FORMAT(`dateTime`, 'HH:mm') FROM bid;
