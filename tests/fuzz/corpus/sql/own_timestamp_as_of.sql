SELECT count(*) FROM main.prices TIMESTAMP AS OF now() - INTERVAL '1 hour'
