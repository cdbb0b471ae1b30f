-- error: SQL error at line 2, column 14: the connector 'kafkaa' is not supported; use one of blackhole, datagen, filesystem, log, nexmark, print, sqlite
CREATE TABLE t (a BIGINT) WITH ('connector' = 'kafkaa');
