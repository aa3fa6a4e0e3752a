SELECT e.id, e.kind, p.price FROM events e ASOF JOIN prices p MATCH_CONDITION (e.ts >= p.ts) ON e.id = p.id
