-- Per-merchant aggregates, merged on merchant_id: an incremental run recomputes
-- only the merchants with new transactions. A feature view (entity merchant_id,
-- event time last_txn_ts) served online.
{{ config(
    materialized='incremental', unique_key='merchant_id',
    feature_view={'entities': ['merchant_id'], 'event_timestamp': 'last_txn_ts', 'online': true}
) }}
SELECT
    merchant_id,
    max(category) AS category,
    max(risk_tier) AS risk_tier,
    count(*) AS txn_count,
    sum(amount) AS total_amount,
    max(ts) AS last_txn_ts
FROM {{ ref('txn_enriched') }}
{% if is_incremental() %}
WHERE merchant_id IN (
    SELECT merchant_id FROM stg_transactions
    WHERE ts > (SELECT max(last_txn_ts) FROM {{ this }})
)
{% endif %}
GROUP BY merchant_id
