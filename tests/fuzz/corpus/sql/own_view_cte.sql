WITH r AS (SELECT * FROM recent) SELECT id, sum(price) OVER (ORDER BY ts ROWS 1 PRECEDING) FROM r UNION ALL SELECT user_id, 1.0 FROM raw.users
