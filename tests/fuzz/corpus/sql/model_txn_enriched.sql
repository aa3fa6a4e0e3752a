-- Transactions with their merchant's category and risk tier. Ephemeral: not
-- stored, inlined as a CTE into the models that read it.

SELECT
    t.txn_id,
    t.user_id,
    t.merchant_id,
    t.amount,
    t.currency,
    t.ts,
    m.category,
    m.risk_tier
FROM stg_transactions AS t
LEFT JOIN stg_merchants AS m ON t.merchant_id = m.merchant_id
