-- Rolling per-user aggregates at every transaction: what was known about the
-- user when the transaction happened (the transaction itself included).
{{ config(
    materialized='table',
    feature_view={'entities': ['user_id'], 'event_timestamp': 'ts', 'ttl': '30d'}
) }}
SELECT
    txn_id,
    user_id,
    ts,
    amount,
    count(*) OVER w30 AS txn_count_30d,
    sum(amount) OVER w30 AS amount_30d,
    avg(CAST(amount AS DOUBLE)) OVER w30 AS avg_amount_30d,  -- sums stay DECIMAL
    count(*) OVER w1 AS txn_count_24h,
    sum(amount) OVER w1 AS amount_24h
FROM {{ ref('stg_transactions') }}
WINDOW
    w30 AS (PARTITION BY user_id ORDER BY ts RANGE BETWEEN INTERVAL '30 days' PRECEDING AND CURRENT ROW),
    w1 AS (PARTITION BY user_id ORDER BY ts RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW)
