-- Per-user transaction features as of `as_of` (a var; default: the end of the
-- example data). A feature view: entity user_id, event time as_of_ts, no TTL,
-- written to the online store by every run ('online': true).
{{ config(
    materialized='table',
    feature_view={'entities': ['user_id'], 'event_timestamp': 'as_of_ts', 'online': true},
    checks=['txn_count > 0', 'total_amount >= 0', 'days_since_last_txn >= 0']
) }}
{% set as_of = var('as_of', '2026-01-06T00:00:00Z') %}
WITH txns AS (
    SELECT user_id, amount, ts
    FROM txn_enriched
    WHERE ts < TIMESTAMP '{{ as_of }}'
)
SELECT
    user_id,
    TIMESTAMP '{{ as_of }}' AS as_of_ts,
    count(*) AS txn_count,
    avg(CAST(amount AS DOUBLE)) AS avg_amount,  -- a statistic: DOUBLE, as DuckDB's avg(DECIMAL)
    sum(amount) AS total_amount,
    stddev_samp(amount) AS stddev_amount,
    max(ts) AS last_txn_ts,
    (to_unixtime(TIMESTAMP '{{ as_of }}') - to_unixtime(max(ts))) / 86400.0 AS days_since_last_txn,
    count(*) FILTER (WHERE ts >= TIMESTAMP '{{ as_of }}' - INTERVAL '30 days') AS txn_count_30d,
    coalesce(sum(amount) FILTER (WHERE ts >= TIMESTAMP '{{ as_of }}' - INTERVAL '30 days'), 0) AS amount_30d
FROM txns
GROUP BY user_id
