-- One row per user (plain SQL: no Jinja needed, dependencies are inferred).
SELECT
    user_id,
    signup_ts,
    upper(country) AS country,
    birth_year,
    coalesce(email_verified, false) AS email_verified
FROM raw.users
