INSERT INTO prices SELECT id + 10, price * 2, ts FROM prices WHERE id IN (SELECT id FROM events)
