-- Singular test: each user's total in user_features equals the sum of their
-- daily spend. Returns the users where it does not (a failing row each).
SELECT f.user_id, f.total_amount, d.amount
FROM user_features AS f
JOIN (
    SELECT user_id, sum(amount) AS amount
    FROM features.daily_user_spend
    WHERE txn_date < DATE '2026-01-06'
    GROUP BY user_id
) AS d ON f.user_id = d.user_id
WHERE abs(f.total_amount - d.amount) > 0.001
