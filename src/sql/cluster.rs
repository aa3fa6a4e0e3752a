//! Scale-out on datafusion-distributed: the coordinator's side of a cluster
//! (which workers there are, how they are reached, the codecs plans are sent
//! with) and the session a worker runs each task in.
//!
//! Planning stays in the coordinator: our SQL front end, the catalog, Delta
//! snapshots (scanned as plain Parquet at a pinned version, see
//! [`crate::warehouse::parquet_scan`]) and the AS OF planner. The distributed
//! planner then cuts the physical plan into stages at its shuffles; workers
//! run the stages' tasks and stream their output to each other over gRPC.
//!
//! What the engine does not do (datafusion-distributed 4.0): it retries no
//! task (a failed task fails the query; `run models` retries whole models),
//! and it does not check workers' health before routing to them (a dead
//! worker fails the query that routes to it, with an error naming it).

use async_trait::async_trait;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::prelude::SessionConfig;
use datafusion_distributed::grpc::{create_worker_client, BoxCloneSyncChannel};
use datafusion_distributed::{
    ChannelResolver, CoordinatorToWorkerMsg, ExecuteTaskRequest, GetWorkerInfoRequest,
    GetWorkerInfoResponse, SetPlanRequest, WorkerChannel, WorkerResolver, WorkerToCoordinatorMsg,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

use crate::error::{Error, Result};

/// The workers a coordinator plans over.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterOptions {
    /// Worker URLs (`http://host:port`), each a `sluice worker`.
    pub workers: Vec<Url>,
    /// How long connecting to a worker may take before the query fails.
    pub connect_timeout: Duration,
    /// A worker that answers no HTTP/2 ping for this long is taken as gone
    /// (a query waiting on it fails instead of hanging).
    pub keepalive_timeout: Duration,
    /// datafusion-distributed settings (`[cluster.settings]`), by name
    /// without the `distributed.` prefix: `compression`, `shuffle_batch_size`,
    /// `file_scan_config_bytes_per_partition`, ...
    pub settings: Vec<(String, String)>,
}

impl ClusterOptions {
    /// Parses worker addresses (`host:port` or `http://host:port`), as
    /// `[cluster] workers`, `--workers` and `SLUICE_WORKERS` give them.
    pub fn parse_workers<S: AsRef<str>>(workers: &[S]) -> Result<Vec<Url>> {
        let mut urls = Vec::new();
        for w in workers {
            let w = w.as_ref().trim();
            if w.is_empty() {
                continue;
            }
            let text = if w.contains("://") {
                w.to_string()
            } else {
                format!("http://{w}")
            };
            let bad = |m: &str| {
                Error::config(
                    "cluster workers",
                    format!("`{w}` {m}: write each worker as http://host:port (what `sluice worker` prints)"),
                )
            };
            let url = Url::parse(&text).map_err(|e| bad(&e.to_string()))?;
            if url.scheme() != "http" && url.scheme() != "https" {
                return Err(bad("is not an http:// address"));
            }
            if url.host_str().is_none() || url.port_or_known_default().is_none() {
                return Err(bad("has no host and port"));
            }
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        Ok(urls)
    }

    /// A cluster of `workers` with the default timeouts (5 s to connect, 20 s
    /// without an answer to a ping).
    pub fn new(workers: Vec<Url>) -> Self {
        ClusterOptions {
            workers,
            connect_timeout: Duration::from_secs(5),
            keepalive_timeout: Duration::from_secs(20),
            settings: Vec::new(),
        }
    }
}

/// The fixed list of workers.
pub(crate) struct StaticWorkers(pub Vec<Url>);

impl WorkerResolver for StaticWorkers {
    fn get_urls(&self) -> DfResult<Vec<Url>> {
        Ok(self.0.clone())
    }
}

/// Connections to workers, one per URL, with a connect timeout and HTTP/2
/// keep-alive (the engine's default channel has neither: an unreachable host
/// would hang until the system's TCP timeout). Every error a worker's channel
/// returns names the worker.
#[derive(Clone)]
pub(crate) struct Channels {
    cache: Arc<Mutex<HashMap<Url, BoxCloneSyncChannel>>>,
    connect_timeout: Duration,
    keepalive_timeout: Duration,
}

impl Channels {
    pub(crate) fn new(options: &ClusterOptions) -> Self {
        Channels {
            cache: Default::default(),
            connect_timeout: options.connect_timeout,
            keepalive_timeout: options.keepalive_timeout,
        }
    }

    fn channel(&self, url: &Url) -> DfResult<BoxCloneSyncChannel> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(url) {
            return Ok(c.clone());
        }
        let half = self.keepalive_timeout / 2;
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
            .map_err(|e| DataFusionError::Configuration(format!("worker address `{url}`: {e}")))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(half.max(Duration::from_secs(1)))
            .keep_alive_timeout(half.max(Duration::from_secs(1)))
            .keep_alive_while_idle(true);
        // Lazy: a worker that is down now fails the request that needs it
        // (within the connect timeout), and is reconnected to later.
        let channel = BoxCloneSyncChannel::new(endpoint.connect_lazy());
        cache.insert(url.clone(), channel.clone());
        Ok(channel)
    }
}

#[async_trait]
impl ChannelResolver for Channels {
    async fn get_worker_client_for_url(&self, url: &Url) -> DfResult<Box<dyn WorkerChannel>> {
        let inner = create_worker_client(self.channel(url)?);
        Ok(Box::new(NamedWorker {
            url: url.clone(),
            inner,
            cache: self.cache.clone(),
        }))
    }
}

/// A worker's channel whose errors say which worker failed. A transport
/// failure drops the cached connection: the next query connects afresh
/// (a connection tried while the worker was down can fail late, and would
/// fail the first query after the worker is back).
struct NamedWorker {
    url: Url,
    inner: Box<dyn WorkerChannel>,
    cache: Arc<Mutex<HashMap<Url, BoxCloneSyncChannel>>>,
}

impl NamedWorker {
    fn failed(&self) -> impl Fn(DataFusionError) -> DataFusionError + Send + Sync + 'static {
        let url = self.url.clone();
        let cache = self.cache.clone();
        move |e| {
            if is_transport(&e) {
                cache.lock().unwrap_or_else(|p| p.into_inner()).remove(&url);
            }
            named(&url, e)
        }
    }
}

fn named(url: &Url, e: DataFusionError) -> DataFusionError {
    let text = e.to_string();
    // Another worker's failure relayed by this one names the worker that
    // failed already.
    if text.contains(url.as_str()) || text.contains("worker http") {
        return e;
    }
    let hint = if is_transport(&e) {
        " (is `sluice worker` running there? a query fails when one of its workers is unreachable)"
    } else {
        ""
    };
    DataFusionError::Context(format!("worker {url}{hint}"), Box::new(e))
}

/// Whether an error's text says a worker of the cluster failed (could not be
/// reached, went away mid-query), not the query: worth running the query
/// again once the worker is back. Other services' connection errors (object
/// storage, Redis) are not this.
pub fn is_transient(message: &str) -> bool {
    if message.contains("(is `sluice worker` running there?")
        || message.contains("timed-out while waiting for the plan to be set by the coordinator")
    {
        return true;
    }
    const TRANSPORT: [&str; 6] = [
        "tcp connect error",
        "transport error",
        "connection reset",
        "Connection reset",
        "Broken pipe",
        "h2 protocol error",
    ];
    message.contains("worker http") && TRANSPORT.iter().any(|s| message.contains(s))
}

/// Whether `e` is the network failing rather than the query.
fn is_transport(e: &DataFusionError) -> bool {
    match e.find_root() {
        DataFusionError::External(inner) => inner
            .downcast_ref::<tonic::Status>()
            .is_some_and(|s| s.code() != tonic::Code::Internal),
        _ => false,
    }
}

#[async_trait]
impl WorkerChannel for NamedWorker {
    async fn coordinator_channel(
        &mut self,
        headers: tonic::codegen::http::HeaderMap,
        set_plan_request: SetPlanRequest,
        c2w_stream: BoxStream<'static, CoordinatorToWorkerMsg>,
        metrics: ExecutionPlanMetricsSet,
        task_ctx: &Arc<TaskContext>,
    ) -> DfResult<BoxStream<'static, DfResult<WorkerToCoordinatorMsg>>> {
        let failed = Arc::new(self.failed());
        let stream = self
            .inner
            .coordinator_channel(headers, set_plan_request, c2w_stream, metrics, task_ctx)
            .await
            .map_err(|e| failed(e))?;
        Ok(stream.map(move |r| r.map_err(|e| failed(e))).boxed())
    }

    async fn execute_task(
        &mut self,
        headers: tonic::codegen::http::HeaderMap,
        request: ExecuteTaskRequest,
        metrics: ExecutionPlanMetricsSet,
        task_ctx: &Arc<TaskContext>,
    ) -> DfResult<Vec<BoxStream<'static, DfResult<arrow::array::RecordBatch>>>> {
        let failed = Arc::new(self.failed());
        let streams = self
            .inner
            .execute_task(headers, request, metrics, task_ctx)
            .await
            .map_err(|e| failed(e))?;
        Ok(streams
            .into_iter()
            .map(|s| {
                let failed = failed.clone();
                s.map(move |r| r.map_err(|e| failed(e))).boxed()
            })
            .collect())
    }

    async fn get_worker_info(
        &mut self,
        request: GetWorkerInfoRequest,
    ) -> DfResult<GetWorkerInfoResponse> {
        let failed = self.failed();
        self.inner.get_worker_info(request).await.map_err(failed)
    }
}

/// A query planned over the cluster, as a table another planner can scan:
/// Delta's writers plan their own operators (which cannot travel to
/// workers) around their input, so a model's query is handed to them as a
/// scan of this, planned in the distributed session, while they plan in the
/// local one ([`local_state`]). Each scan plans the query again (a writer may
/// read its input twice).
#[derive(Debug)]
pub struct DistributedInput {
    plan: datafusion::logical_expr::LogicalPlan,
    state: datafusion::execution::session_state::SessionState,
}

impl DistributedInput {
    /// `plan` to be planned in `state` (a cluster's session) when scanned.
    pub fn new(
        plan: datafusion::logical_expr::LogicalPlan,
        state: datafusion::execution::session_state::SessionState,
    ) -> Self {
        DistributedInput { plan, state }
    }

    /// A logical plan scanning it.
    pub fn into_plan(self) -> DfResult<datafusion::logical_expr::LogicalPlan> {
        let provider: Arc<dyn datafusion::catalog::TableProvider> = Arc::new(self);
        datafusion::logical_expr::LogicalPlanBuilder::scan(
            "input",
            datafusion::datasource::provider_as_source(provider),
            None,
        )?
        .build()
    }
}

#[async_trait]
impl datafusion::catalog::TableProvider for DistributedInput {
    fn schema(&self) -> arrow::datatypes::SchemaRef {
        self.plan.schema().inner().clone()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        _filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let mut builder = datafusion::logical_expr::LogicalPlanBuilder::from(self.plan.clone());
        if let Some(p) = projection {
            let columns: Vec<datafusion::logical_expr::Expr> = p
                .iter()
                .map(|i| {
                    let (q, f) = self.plan.schema().qualified_field(*i);
                    datafusion::logical_expr::Expr::Column(datafusion::common::Column::new(
                        q.cloned(),
                        f.name(),
                    ))
                })
                .collect();
            builder = builder.project(columns)?;
        }
        if let Some(n) = limit {
            builder = builder.limit(0, Some(n))?;
        }
        let plan = self.state.optimize(&builder.build()?)?;
        let plan = self.state.create_physical_plan(&plan).await?;
        Ok(Arc::new(Sealed::new(plan)))
    }
}

/// A distributed plan as a leaf: the planner that plans around it (Delta's
/// writers, in the local session) must not rewrite inside it (its optimizer
/// would drop the one-partition merge the distributed plan ends with).
#[derive(Debug)]
struct Sealed {
    inner: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    properties: Arc<datafusion::physical_plan::PlanProperties>,
}

impl Sealed {
    fn new(inner: Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> Self {
        use datafusion::physical_plan::ExecutionPlanProperties;
        let properties = Arc::new(datafusion::physical_plan::PlanProperties::new(
            datafusion::physical_expr::EquivalenceProperties::new(inner.schema()),
            datafusion::physical_plan::Partitioning::UnknownPartitioning(1),
            inner.pipeline_behavior(),
            inner.boundedness(),
        ));
        Sealed { inner, properties }
    }
}

impl datafusion::physical_plan::DisplayAs for Sealed {
    fn fmt_as(
        &self,
        _t: datafusion::physical_plan::DisplayFormatType,
        f: &mut std::fmt::Formatter,
    ) -> std::fmt::Result {
        write!(f, "DistributedInput")
    }
}

impl datafusion::physical_plan::ExecutionPlan for Sealed {
    fn name(&self) -> &str {
        "DistributedInput"
    }

    fn properties(&self) -> &Arc<datafusion::physical_plan::PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> DfResult<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> DfResult<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
    ) -> DfResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<datafusion::execution::SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "DistributedInput has one partition, not {partition}"
            )));
        }
        datafusion::physical_plan::execute_stream(self.inner.clone(), context)
    }
}

/// `state` planning in this process only (a cluster's session without its
/// distributed planner; `state` itself when it has none).
pub fn local_state(
    state: datafusion::execution::session_state::SessionState,
) -> datafusion::execution::session_state::SessionState {
    let nested = state
        .config()
        .get_extension::<crate::warehouse::NestedPlanner>();
    match nested {
        Some(n) => {
            datafusion::execution::session_state::SessionStateBuilder::new_from_existing(state)
                .with_query_planner(n.0.clone())
                .build()
        }
        None => state,
    }
}

/// What every session of a cluster needs, coordinator and worker alike: our
/// plan codec and the channels to the workers (workers call each other).
pub(crate) fn cluster_config(config: SessionConfig, channels: Channels) -> SessionConfig {
    use datafusion_distributed::DistributedExt;
    config
        .with_distributed_user_codec(crate::asof::AsOfCodec)
        .with_distributed_channel_resolver(channels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_addresses_parse_or_say_how_to_write_them() {
        let urls = ClusterOptions::parse_workers(&[
            "127.0.0.1:7001",
            " http://w2:7002 ",
            "",
            "127.0.0.1:7001",
        ])
        .unwrap();
        let shown: Vec<&str> = urls.iter().map(|u| u.as_str()).collect();
        assert_eq!(shown, ["http://127.0.0.1:7001/", "http://w2:7002/"]);
        for bad in ["ftp://x:1", "http://", "not a url:::"] {
            let err = ClusterOptions::parse_workers(&[bad])
                .unwrap_err()
                .to_string();
            assert!(err.contains("http://host:port"), "{bad}: {err}");
        }
    }

    #[test]
    fn worker_failures_are_transient_and_query_errors_are_not() {
        let down = named(
            &Url::parse("http://w2:50052").unwrap(),
            DataFusionError::External(Box::new(tonic::Status::unavailable("tcp connect error"))),
        )
        .to_string();
        assert!(down.contains("worker http://w2:50052/"), "{down}");
        assert!(is_transient(&down), "{down}");
        let query = named(
            &Url::parse("http://w2:50052").unwrap(),
            DataFusionError::Execution("Divide by zero error".into()),
        )
        .to_string();
        assert!(query.contains("w2:50052"), "{query}");
        assert!(!is_transient(&query), "{query}");
        assert!(!is_transient("Schema error: No field named amount2"));
        assert!(!is_transient(
            "writing the online store: storage `redis://127.0.0.1:1`: Connection refused (os error 111)"
        ));
    }
}
