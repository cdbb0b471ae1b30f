-- error: SQL error at line 2, column 14: the connector 'kafkaa' is not supported; use one of blackhole, datagen, delta, filesystem, jdbc, kafka, log, mqtt, nexmark, print, redis, socket, sqlite, upsert-kafka
CREATE TABLE t (a BIGINT) WITH ('connector' = 'kafkaa');
