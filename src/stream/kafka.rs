//! The Kafka side: connecting (TLS, SASL), a topic's partitions, where each
//! partition starts, and one fetch task per partition.
//!
//! The client is rskafka (pure Rust, no consumer groups): sluice keeps its own
//! offsets in the Delta table (`txn` actions), so it needs no group
//! coordinator, only Metadata, ListOffsets and Fetch. A partition's end is the
//! high watermark that fetch responses carry (some brokers answer ListOffsets
//! "latest" wrongly).

use crate::error::{Error, Result};
use crate::project::{KafkaOptions, KafkaStart};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use rskafka::record::RecordAndOffset;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long connecting and each request may retry before the source fails.
const DEADLINE: Duration = Duration::from_secs(15);
/// Bytes asked for per fetch (a record batch larger than this still comes whole).
const FETCH_BYTES: i32 = 8 << 20;
/// How long a fetch waits at the end of a partition for new records.
const FETCH_WAIT_MS: i32 = 100;

/// A connected topic.
pub struct Topic {
    pub name: String,
    pub partitions: Vec<Arc<PartitionClient>>,
}

fn kafka_err(source: &str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::source(source, format!("kafka: {what}: {e}"))
}

/// Connects to the source's brokers and opens a client per partition of its topic.
pub async fn connect(source: &str, k: &KafkaOptions) -> Result<Topic> {
    let brokers = k.bootstrap_servers.items();
    let mut builder = ClientBuilder::new(brokers.clone())
        .client_id(format!("sluice-{source}"))
        .backoff_config(rskafka::BackoffConfig {
            deadline: Some(DEADLINE),
            ..Default::default()
        });
    if k.tls || k.tls_ca_file.is_some() {
        builder = builder.tls_config(Arc::new(tls_config(source, k)?));
    }
    if let Some(mech) = &k.sasl_mechanism {
        let var = k.sasl_password_env.clone().unwrap_or_default();
        let password = std::env::var(&var).map_err(|_| {
            Error::source(
                source,
                format!("[source.kafka] sasl_password_env names `{var}`, which is not set in the environment"),
            )
        })?;
        let creds = Credentials::new(k.sasl_username.clone().unwrap_or_default(), password);
        builder = builder.sasl_config(match mech.to_ascii_uppercase().as_str() {
            "SCRAM-SHA-256" => SaslConfig::ScramSha256(creds),
            "SCRAM-SHA-512" => SaslConfig::ScramSha512(creds),
            _ => SaslConfig::Plain(creds),
        });
    }
    let client: Client = builder.build().await.map_err(|e| {
        kafka_err(
            source,
            &format!("cannot reach the brokers {}", brokers.join(", ")),
            e,
        )
    })?;
    let topics = client
        .list_topics()
        .await
        .map_err(|e| kafka_err(source, "listing topics", e))?;
    let Some(topic) = topics.iter().find(|t| t.name == k.topic) else {
        let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        return Err(Error::source(
            source,
            format!(
                "kafka topic `{}` does not exist on {}{}; topics there: {}",
                k.topic,
                brokers.join(", "),
                crate::error::did_you_mean(&k.topic, names.iter().copied()),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        ));
    };
    let ids: Vec<i32> = topic.partitions.iter().copied().collect();
    let mut partitions = Vec::with_capacity(ids.len());
    for p in ids {
        let pc = client
            .partition_client(k.topic.clone(), p, UnknownTopicHandling::Error)
            .await
            .map_err(|e| kafka_err(source, &format!("partition {p} of `{}`", k.topic), e))?;
        partitions.push(Arc::new(pc));
    }
    Ok(Topic {
        name: k.topic.clone(),
        partitions,
    })
}

fn tls_config(source: &str, k: &KafkaOptions) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match &k.tls_ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            let mut added = 0;
            for cert in rustls_pki_certs(&pem) {
                if roots.add(cert).is_ok() {
                    added += 1;
                }
            }
            if added == 0 {
                return Err(Error::source(
                    source,
                    format!("[source.kafka] tls_ca_file `{path}` holds no PEM certificate"),
                ));
            }
        }
        None => {
            return Err(Error::source(
                source,
                "[source.kafka] tls = true needs tls_ca_file (the PEM of the CA that signed the brokers' certificates)",
            ))
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::source(source, format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The certificates of a PEM text.
fn rustls_pki_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(|c| c.ok())
        .collect()
}

/// The partition's high watermark: the offset the next record will get.
pub async fn end_offset(source: &str, pc: &PartitionClient) -> Result<i64> {
    let start = pc.get_offset(OffsetAt::Earliest).await.map_err(|e| {
        kafka_err(
            source,
            &format!("offsets of partition {}", pc.partition()),
            e,
        )
    })?;
    let (_, hw) = pc
        .fetch_records(start, 1..65_536, FETCH_WAIT_MS)
        .await
        .map_err(|e| kafka_err(source, &format!("end of partition {}", pc.partition()), e))?;
    Ok(hw.max(start))
}

/// Where a partition with no stored offset starts.
pub async fn start_offset(source: &str, pc: &PartitionClient, start: &KafkaStart) -> Result<i64> {
    let err = |e| kafka_err(source, &format!("start of partition {}", pc.partition()), e);
    match start {
        KafkaStart::Earliest => pc.get_offset(OffsetAt::Earliest).await.map_err(err),
        KafkaStart::Latest => end_offset(source, pc).await,
        KafkaStart::Timestamp(ms) => {
            let at = chrono::DateTime::from_timestamp_millis(*ms).unwrap_or_default();
            let o = pc.get_offset(OffsetAt::Timestamp(at)).await.map_err(err)?;
            // No record at or after the time: the end.
            if o < 0 {
                end_offset(source, pc).await
            } else {
                Ok(o)
            }
        }
    }
}

/// Records of one partition, with where it ends now.
pub struct Fetched {
    pub partition: i32,
    pub records: Vec<RecordAndOffset>,
    /// The offset after the last record fetched (the next one to ask for).
    pub next: i64,
    pub high_watermark: i64,
}

/// One task per partition, each fetching from its offset on into one channel.
pub struct Fetchers {
    pub rx: mpsc::Receiver<Result<Fetched>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Fetchers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts fetching each partition of `topic` at `from[i]`. With `until`, a
/// partition's task stops once it reaches that offset.
pub fn spawn_fetchers(
    source: &str,
    topic: &Topic,
    from: &[i64],
    until: Option<&[i64]>,
    skip_lost: bool,
) -> Fetchers {
    let (tx, rx) = mpsc::channel(4 * topic.partitions.len().max(1));
    let mut tasks = Vec::new();
    for (i, pc) in topic.partitions.iter().enumerate() {
        let pc = pc.clone();
        let tx = tx.clone();
        let from = from.get(i).copied().unwrap_or(0);
        let until = until.and_then(|u| u.get(i).copied());
        let source = source.to_string();
        tasks.push(tokio::spawn(async move {
            let result = fetch_loop(&source, &pc, from, until, skip_lost, &tx).await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        }));
    }
    Fetchers { rx, tasks }
}

/// Fetches one partition from `next` on (to `until`), sending every answer,
/// empty ones too (they carry the high watermark).
async fn fetch_loop(
    source: &str,
    pc: &PartitionClient,
    mut next: i64,
    until: Option<i64>,
    skip_lost: bool,
    tx: &mpsc::Sender<Result<Fetched>>,
) -> Result<()> {
    let partition = pc.partition();
    // Empty answers in a row below the high watermark at one offset: the
    // offset holds no data record (a transaction marker).
    let mut empty_at = 0u32;
    loop {
        if until.is_some_and(|u| next >= u) {
            return Ok(());
        }
        let (mut records, hw) = match pc.fetch_records(next, 1..FETCH_BYTES, FETCH_WAIT_MS).await {
            Ok(r) => r,
            Err(e) if is_out_of_range(&e) => {
                let first = pc.get_offset(OffsetAt::Earliest).await.map_err(|e| {
                    kafka_err(source, &format!("offsets of partition {partition}"), e)
                })?;
                if first <= next {
                    return Err(kafka_err(
                        source,
                        &format!("fetching partition {partition} at {next}"),
                        e,
                    ));
                }
                if !skip_lost {
                    return Err(Error::source(
                        source,
                        format!(
                            "kafka: offsets {next}..{first} of partition {partition} are no longer on the broker (its retention deleted them before they were loaded). To go on from offset {first}, losing them, set `skip_lost_records = true` in [source.kafka]"
                        ),
                    ));
                }
                tracing::warn!(
                    "source {source}: partition {partition} offsets {next}..{first} were deleted by the broker before they were loaded (skip_lost_records): skipped"
                );
                next = first;
                continue;
            }
            Err(e) => {
                return Err(kafka_err(
                    source,
                    &format!("fetching partition {partition} at {next}"),
                    e,
                ))
            }
        };
        if let Some(u) = until {
            records.retain(|r| r.offset < u);
        }
        if let Some(last) = records.last() {
            next = last.offset + 1;
            empty_at = 0;
        } else if hw > next {
            empty_at += 1;
            if empty_at >= 5 {
                tracing::warn!(
                    "source {source}: partition {partition} offset {next} holds no data record (a transaction marker?): skipped"
                );
                next += 1;
                empty_at = 0;
            }
        }
        let fetched = Fetched {
            partition,
            records,
            next,
            high_watermark: hw,
        };
        if tx.send(Ok(fetched)).await.is_err() {
            return Ok(());
        }
    }
}

fn is_out_of_range(e: &rskafka::client::error::Error) -> bool {
    matches!(
        e,
        rskafka::client::error::Error::ServerError {
            protocol_error: rskafka::client::error::ProtocolError::OffsetOutOfRange,
            ..
        }
    )
}
