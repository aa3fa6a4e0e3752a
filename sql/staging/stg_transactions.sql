-- Transactions with a known user; amounts stay DECIMAL(10,2) (exact money:
-- sums are exact too), currency codes upper-case.
{{ config(materialized='view') }}
SELECT
    txn_id,
    user_id,
    merchant_id,
    amount,
    upper(currency) AS currency,
    ts
FROM raw.transactions
WHERE user_id IS NOT NULL
