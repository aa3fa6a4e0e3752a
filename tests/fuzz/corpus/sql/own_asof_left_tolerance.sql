SELECT * FROM events e ASOF LEFT JOIN prices p ON e.id = p.id AND e.ts >= p.ts TOLERANCE INTERVAL '1 day' WHERE p.price > 10
