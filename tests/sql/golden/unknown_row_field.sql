-- error: SQL error at line 4, column 25: unknown field 'pirce' of the ROW column 'bid'; did you mean 'price'? (fields: auction, bidder, price, dateTime)
CREATE TABLE datagen (event_type INT, bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3)>)
WITH ('connector' = 'nexmark', 'events.num' = '1000');
SELECT bid.auction, bid.pirce FROM datagen WHERE event_type = 2;
