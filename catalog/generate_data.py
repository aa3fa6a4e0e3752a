#!/usr/bin/env python3
"""Generate the deterministic example data set for the fraud_features project.

Stdlib only. Output is byte-for-byte identical on every run (fixed seed, no
wall-clock input). Writes into catalog/data/ next to this script:

  users.csv                       1000 users
  merchants.ndjson                200 merchants
  transactions/2026-01-0{1..5}.csv  1000 transactions per day
  labels.ndjson                   one label per transaction (~2% fraud)
"""
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

SEED = 20260101
N_USERS = 1000
N_MERCHANTS = 200
DAYS = 5
TXNS_PER_DAY = 1000
FRAUD_RATE = 0.02

COUNTRIES = ["DE", "FR", "GB", "US", "NL", "ES", "IT", "PL", "SE", "IE"]
CATEGORIES = ["grocery", "electronics", "travel", "fashion", "gaming",
              "restaurants", "fuel", "pharmacy", "digital_goods", "utilities"]
CURRENCIES = ["EUR", "USD", "GBP"]
NAME_A = ["Blue", "Green", "North", "Silver", "Quick", "Urban", "Royal",
          "Bright", "Golden", "Happy", "Metro", "Prime"]
NAME_B = ["Market", "Shop", "Store", "Traders", "Outlet", "Bazaar", "Depot",
          "Corner", "Supply", "Works"]

OUT = Path(__file__).resolve().parent / "data"


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def rand_ts(rng: random.Random, start: datetime, seconds: int) -> datetime:
    return start + timedelta(seconds=rng.randrange(seconds))


def write_text(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(line + "\n" for line in lines))


def main() -> None:
    rng = random.Random(SEED)
    utc = timezone.utc

    # users
    y2025 = datetime(2025, 1, 1, tzinfo=utc)
    lines = ["user_id,signup_ts,country,birth_year,email_verified"]
    for uid in range(1, N_USERS + 1):
        ts = rand_ts(rng, y2025, 365 * 86400)
        lines.append(",".join([
            str(uid), iso(ts), rng.choice(COUNTRIES),
            str(rng.randint(1950, 2006)),
            "true" if rng.random() < 0.85 else "false",
        ]))
    write_text(OUT / "users.csv", lines)

    # merchants
    y2024 = datetime(2024, 1, 1, tzinfo=utc)
    risk_tiers = {}
    lines = []
    for mid in range(1, N_MERCHANTS + 1):
        tier = rng.choices([1, 2, 3], weights=[6, 3, 1])[0]
        risk_tiers[mid] = tier
        obj = {
            "merchant_id": mid,
            "name": f"{rng.choice(NAME_A)} {rng.choice(NAME_B)} {mid}",
            "category": rng.choice(CATEGORIES),
            "risk_tier": tier,
            "onboarded_at": iso(rand_ts(rng, y2024, 366 * 86400)),
        }
        lines.append(json.dumps(obj))
    write_text(OUT / "merchants.ndjson", lines)

    # transactions + labels
    labels = []
    txn_id = 0
    for d in range(DAYS):
        day = datetime(2026, 1, 1 + d, tzinfo=utc)
        times = sorted(rand_ts(rng, day, 86400) for _ in range(TXNS_PER_DAY))
        lines = ["txn_id,user_id,merchant_id,amount,currency,ts"]
        for ts in times:
            txn_id += 1
            mid = rng.randint(1, N_MERCHANTS)
            cents = int(rng.lognormvariate(7.6, 1.1))  # median ~20.00
            cents = max(50, min(cents, 500_000))
            lines.append(",".join([
                str(txn_id), str(rng.randint(1, N_USERS)), str(mid),
                f"{cents // 100}.{cents % 100:02d}", rng.choice(CURRENCIES),
                iso(ts),
            ]))
            fraud = rng.random() < FRAUD_RATE * risk_tiers[mid] / 1.5
            delay = rng.randrange(3 * 3600, 4 * 86400)
            labels.append(json.dumps({
                "txn_id": txn_id,
                "is_fraud": fraud,
                "label_ts": iso(ts + timedelta(seconds=delay)),
            }))
        write_text(OUT / "transactions" / f"{day:%Y-%m-%d}.csv", lines)
    write_text(OUT / "labels.ndjson", labels)


if __name__ == "__main__":
    main()
