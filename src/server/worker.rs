//! `sluice worker`: a worker of the distributed engine (datafusion-distributed)
//! on our tonic server stack. A coordinator (`sluice sql`, `run`, `serve` with
//! `[cluster] workers`) sends it the tasks of a plan's stages; it runs them
//! with the same functions, codecs and object stores as the coordinator (the
//! warehouse's store, with the project's storage settings) and streams their
//! output to whoever asks: the coordinator or another worker.
//!
//! A plan it cannot decode (a node without a codec, another sluice release)
//! fails that query with the decoder's error, which names the node.

use crate::error::{Error, Result};
use crate::sql::cluster::{Channels, ClusterOptions};
use crate::warehouse::Warehouse;
use datafusion_distributed::{DistributedExt, Worker, WorkerQueryContext};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub addr: SocketAddr,
    /// Memory its tasks may use before they spill (bytes); `None`: as the
    /// engine (`SLUICE_MEMORY_LIMIT`, else 75% of physical memory).
    pub memory_limit: Option<usize>,
}

/// What a worker has done (for tests and logs).
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Tasks it received (one session each).
    pub tasks: AtomicU64,
}

/// A worker's service, to mount on a tonic server (or on tests' in-process
/// servers), and its counters.
pub fn worker_service(
    warehouse: &Warehouse,
    memory_limit: Option<usize>,
) -> Result<(Worker, Arc<WorkerStats>)> {
    let limit = crate::sql::memory_limit(memory_limit)?;
    let runtime = crate::sql::runtime_env(warehouse, limit)?;
    let stats = Arc::new(WorkerStats::default());
    let counted = stats.clone();
    // Workers call each other (a task reads the stage below it) with the
    // same timeouts a coordinator uses.
    let channels = Channels::new(&ClusterOptions::new(Vec::new()));
    let worker = Worker::from_session_builder(move |ctx: WorkerQueryContext| {
        let channels = channels.clone();
        let n = counted.tasks.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!("worker: task {n} received");
        async move {
            let mut state = ctx
                .builder
                .with_distributed_user_codec(crate::asof::AsOfCodec)
                .with_distributed_channel_resolver(channels)
                .build();
            crate::sql::install_functions(&mut state, limit)
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            Ok(state)
        }
    })
    .with_runtime_env(runtime)
    .with_version(env!("CARGO_PKG_VERSION"));
    Ok((worker, stats))
}

/// A worker serving in this process (tests, benchmarks, `sluice worker`).
pub struct RunningWorker {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// What it has done.
    pub stats: Arc<WorkerStats>,
    /// The server; it ends when the shutdown future given resolves.
    pub server: tokio::task::JoinHandle<Result<()>>,
}

impl RunningWorker {
    /// Its URL, as coordinators name it (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Binds `options.addr` (port 0 picks one) and serves a worker there until
/// `shutdown` resolves.
pub async fn start_worker(
    warehouse: &Warehouse,
    options: WorkerOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<RunningWorker> {
    if warehouse.root().scheme() == "memory" {
        return Err(Error::config(
            "sluice worker",
            "a memory:// warehouse cannot be shared with a coordinator: use a local folder every process sees, or s3://",
        ));
    }
    let (worker, stats) = worker_service(warehouse, options.memory_limit)?;
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|e| {
            Error::config(
                "sluice worker",
                format!("cannot listen on {}: {e}", options.addr),
            )
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(worker.into_worker_server())
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener)
                    .with_nodelay(Some(true))
                    .with_keepalive(Some(std::time::Duration::from_secs(30))),
                shutdown,
            )
            .await
            .map_err(|e| Error::Internal(format!("worker stopped: {e}")))
    });
    Ok(RunningWorker {
        addr,
        stats,
        server,
    })
}

/// Serves a worker on `options.addr` until `shutdown` resolves; `ready` gets
/// the bound address (port 0 picks one).
pub async fn serve_worker(
    warehouse: Warehouse,
    options: WorkerOptions,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let running = start_worker(&warehouse, options, shutdown).await?;
    ready(running.addr);
    running
        .server
        .await
        .map_err(|e| Error::Internal(format!("worker stopped: {e}")))?
}
