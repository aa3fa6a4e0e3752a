SELECT
    merchant_id,
    name AS merchant_name,
    category,
    risk_tier
FROM raw.merchants
