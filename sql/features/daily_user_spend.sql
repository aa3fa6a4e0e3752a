-- Spend per user and day. Incremental: each run recomputes the days from the
-- latest stored day on and replaces those days (delete+insert on txn_date).
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='txn_date') }}
SELECT
    user_id,
    CAST(ts AS DATE) AS txn_date,
    count(*) AS txn_count,
    sum(amount) AS amount
FROM stg_transactions
{% if is_incremental() %}
WHERE CAST(ts AS DATE) >= (SELECT max(txn_date) FROM {{ this }})
{% endif %}
GROUP BY user_id, CAST(ts AS DATE)
