-- Transactions with a known user; amounts as DOUBLE, currency codes upper-case.

SELECT
    txn_id,
    user_id,
    merchant_id,
    CAST(amount AS DOUBLE) AS amount,
    upper(currency) AS currency,
    ts
FROM raw.transactions
WHERE user_id IS NOT NULL
