"""One ADBC client, one connection, N prepared executions of SQL with a random
key: latency p50/p99 and the client's own CPU per query. Compares an online
lookup with the client's floor (`SELECT 1`) on a running `sluice serve`:

  python benches/online_probe.py grpc://127.0.0.1:PORT "SELECT * FROM online.v1 WHERE entity_id = ?" 2000
  python benches/online_probe.py grpc://127.0.0.1:PORT "SELECT 1" 2000
"""
import random
import sys
import time

import adbc_driver_flightsql.dbapi as flightsql


def main() -> None:
    uri, sql, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    keys = int(sys.argv[4]) if len(sys.argv) > 4 else 1_000_000
    with flightsql.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        lat = []
        cpu0 = time.process_time()
        for _ in range(n):
            started = time.perf_counter()
            if "?" in sql:
                cur.execute(sql, (random.randrange(keys),))
            else:
                cur.execute(sql)
            cur.fetch_arrow_table()
            lat.append((time.perf_counter() - started) * 1000)
        cpu = (time.process_time() - cpu0) / n * 1000
    lat.sort()
    print(f"{sql!r}: {n} queries, p50 {lat[n // 2]:.2f} ms, p99 {lat[int(n * 0.99)]:.2f} ms, "
          f"client CPU {cpu:.2f} ms per query")


if __name__ == "__main__":
    main()
