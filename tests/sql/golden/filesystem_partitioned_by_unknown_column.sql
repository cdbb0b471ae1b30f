-- error: PARTITIONED BY hour: 'hour' is not a column of 'fs_sink'; partition by physical columns (auction, price, dt, hm)
CREATE TABLE fs_sink (auction BIGINT, price BIGINT, dt STRING, hm STRING) PARTITIONED BY (dt, hour) WITH (
  'connector' = 'filesystem', 'path' = 'out/', 'format' = 'csv');
