//! The warehouse as a DataFusion catalog: schema `x`, table `y` is the Delta
//! table at `<root>/x/y/` or the stored view `x.y`, found without registering
//! anything. In the default schema, a bare model name that is unique across
//! schemas resolves to its model (see [`super::views`]).

use super::views::{Aliases, SqlView};
use super::Warehouse;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::session_state::SessionState;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

type StateFn = Box<dyn Fn() -> Option<SessionState> + Send + Sync>;

/// What all schemas of a catalog share.
struct Shared {
    warehouse: Warehouse,
    default_schema: String,
    /// The session that owns this catalog (views are planned in it).
    session: OnceLock<StateFn>,
    aliases: RwLock<Aliases>,
    /// Tables this process just wrote, at the version it wrote: read without
    /// listing and replaying their log again (a model run reads what it built).
    pinned: RwLock<std::collections::HashMap<(String, String), deltalake::DeltaTable>>,
    /// Snapshots read before, reused while the table has no newer commit (a
    /// query pays one existence check instead of a log replay: what a server
    /// answering many small queries needs).
    /// With the stamp of the snapshot's commit file (a table dropped and
    /// re-created up to the same version by another process is not reused).
    snapshots: RwLock<std::collections::HashMap<(String, String), (deltalake::DeltaTable, String)>>,
    /// Small tables kept decoded in memory (off unless set: the server).
    memory: std::sync::Mutex<super::table_cache::TableCache>,
    /// Delta tables are scanned as plain Parquet (a cluster's coordinator).
    as_parquet: std::sync::atomic::AtomicBool,
}

impl Shared {
    async fn delta_provider(
        &self,
        name: &str,
        table: deltalake::DeltaTable,
    ) -> DfResult<Arc<dyn TableProvider>> {
        if self.as_parquet.load(std::sync::atomic::Ordering::Relaxed) {
            let t = super::parquet_scan::DeltaParquetTable::try_new(name, table).await?;
            return Ok(Arc::new(t));
        }
        table
            .table_provider()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("warehouse", &self.warehouse.root().as_str())
            .finish()
    }
}

/// Catalog over all schemas of a warehouse.
#[derive(Debug)]
pub struct WarehouseCatalog {
    shared: Arc<Shared>,
    schemas: RwLock<BTreeMap<String, Arc<WarehouseSchema>>>,
    /// Schemas that are not warehouse folders (`online`).
    extra: RwLock<BTreeMap<String, Arc<dyn SchemaProvider>>>,
}

impl WarehouseCatalog {
    /// Lists the warehouse's schemas (two listings). Tables are found by name
    /// when a query names them, and listed only when a query asks for the
    /// names (`information_schema`), so start-up costs the same for 10 tables
    /// as for 10,000, also on object storage.
    pub async fn try_new(warehouse: Warehouse, default_schema: &str) -> crate::Result<Self> {
        let aliases = warehouse.get_aliases().await?;
        let shared = Arc::new(Shared {
            warehouse: warehouse.clone(),
            default_schema: default_schema.to_string(),
            session: OnceLock::new(),
            aliases: RwLock::new(aliases),
            pinned: RwLock::new(Default::default()),
            snapshots: RwLock::new(Default::default()),
            memory: Default::default(),
            as_parquet: Default::default(),
        });
        let mut schemas = BTreeMap::new();
        let mut names = warehouse.list_schemas().await?;
        names.extend(warehouse.list_view_schemas().await?);
        names.push(default_schema.to_string());
        for name in names {
            if schemas.contains_key(&name) {
                continue;
            }
            schemas.insert(
                name.clone(),
                Arc::new(WarehouseSchema::new(shared.clone(), name, Vec::new())),
            );
        }
        Ok(WarehouseCatalog {
            shared,
            schemas: RwLock::new(schemas),
            extra: RwLock::new(BTreeMap::new()),
        })
    }

    /// Gives the catalog the session it belongs to (needed to plan views).
    pub fn bind_session(&self, state: impl Fn() -> Option<SessionState> + Send + Sync + 'static) {
        let _ = self.shared.session.set(Box::new(state));
    }

    /// Serves `schema.table` from `table` (a state this process just committed)
    /// instead of reloading it from storage; `None` forgets it.
    pub fn pin(&self, schema: &str, table: &str, state: Option<deltalake::DeltaTable>) {
        if let Ok(mut p) = self.shared.pinned.write() {
            let key = (schema.to_string(), table.to_string());
            match state {
                Some(t) => {
                    p.insert(key, t);
                }
                None => {
                    p.remove(&key);
                }
            }
        }
        if let Ok(mut s) = self.shared.snapshots.write() {
            s.remove(&(schema.to_string(), table.to_string()));
        }
        self.shared
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forget(&(schema.to_string(), table.to_string()));
    }

    /// Keeps tables whose Parquet files total at most `budget / 8` decoded in
    /// memory, per Delta version, within `budget` bytes in all (least recently
    /// used first out); 0 turns it off. A query then pays neither a log replay
    /// nor Parquet decoding: what a server answering many small queries needs.
    /// A new commit is seen as before (two HEAD requests per query).
    pub fn set_table_cache(&self, budget: usize) {
        let mut m = self.shared.memory.lock().unwrap_or_else(|e| e.into_inner());
        m.set_budget(budget);
    }

    /// Scans Delta tables as plain Parquet files of the version a query
    /// pinned ([`super::parquet_scan`]), which workers of a cluster can read.
    pub fn scan_as_parquet(&self, on: bool) {
        self.shared
            .as_parquet
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The provider of `table` (a loaded version of `name`): Delta's own, or
    /// its files as Parquet in a cluster.
    pub async fn delta_provider(
        &self,
        name: &str,
        table: deltalake::DeltaTable,
    ) -> DfResult<Arc<dyn TableProvider>> {
        self.shared.delta_provider(name, table).await
    }

    /// The `(schema, table)` a bare model name stands for, if any.
    pub fn alias(&self, name: &str) -> Option<(String, String)> {
        self.shared
            .aliases
            .read()
            .ok()
            .and_then(|a| a.get(name).cloned())
    }

    /// Serves schema `name` from `provider` instead of the warehouse.
    pub fn set_extra_schema(&self, name: &str, provider: Arc<dyn SchemaProvider>) {
        if let Ok(mut e) = self.extra.write() {
            e.insert(name.to_string(), provider);
        }
    }

    /// Forgets the table listings (they are listed again when next asked for):
    /// after this process created or dropped tables, or to see other writers'.
    pub fn invalidate_listings(&self) {
        if let Ok(s) = self.schemas.read() {
            for schema in s.values() {
                if let Ok(mut l) = schema.listed.write() {
                    l.clear();
                }
                schema
                    .complete
                    .store(false, std::sync::atomic::Ordering::Release);
            }
        }
    }

    /// Replaces the bare-name map (a run knows its models before they exist).
    pub fn set_aliases(&self, aliases: Aliases) {
        if let Ok(mut a) = self.shared.aliases.write() {
            *a = aliases;
        }
    }
}

impl CatalogProvider for WarehouseCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = match self.schemas.read() {
            Ok(s) => s.keys().cloned().collect(),
            Err(_) => Vec::new(),
        };
        if let Ok(e) = self.extra.read() {
            names.extend(
                e.keys()
                    .filter(|k| !names.contains(k))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Some(extra) = self.extra.read().ok().and_then(|e| e.get(name).cloned()) {
            return Some(extra);
        }
        if let Ok(s) = self.schemas.read() {
            if let Some(schema) = s.get(name) {
                return Some(schema.clone() as Arc<dyn SchemaProvider>);
            }
        }
        if !super::is_identifier(name) {
            return None;
        }
        // A schema created after the session started (for example by a load in the
        // same process): resolve lazily; its tables are opened by name.
        let schema = Arc::new(WarehouseSchema::new(
            self.shared.clone(),
            name.to_string(),
            Vec::new(),
        ));
        if let Ok(mut s) = self.schemas.write() {
            s.insert(name.to_string(), schema.clone());
        }
        Some(schema)
    }

    fn register_schema(
        &self,
        name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        let schema = Arc::new(WarehouseSchema::new(
            self.shared.clone(),
            name.to_string(),
            Vec::new(),
        ));
        let mut s = self
            .schemas
            .write()
            .map_err(|_| DataFusionError::Internal("catalog lock poisoned".into()))?;
        Ok(s.insert(name.to_string(), schema)
            .map(|p| p as Arc<dyn SchemaProvider>))
    }
}

/// One schema: Delta tables and views found in storage, plus session-local tables.
#[derive(Debug)]
pub struct WarehouseSchema {
    shared: Arc<Shared>,
    name: String,
    listed: RwLock<Vec<String>>,
    /// Whether `listed` holds every stored table and view (listed on first use).
    complete: std::sync::atomic::AtomicBool,
    /// Tables registered in this session only (not persisted).
    local: MemorySchemaProvider,
}

impl WarehouseSchema {
    /// The provider of the latest snapshot `table` of `name`: from the memory
    /// cache when it is on and the table small enough, else Delta's scan.
    async fn provider(
        &self,
        name: &str,
        table: &deltalake::DeltaTable,
    ) -> DfResult<Arc<dyn TableProvider>> {
        let qualified = format!("{}.{name}", self.name);
        let delta = || self.shared.delta_provider(&qualified, table.clone());
        let (Some(version), Ok(snapshot)) = (table.version(), table.snapshot()) else {
            return delta().await;
        };
        let stamp = (snapshot.metadata().id().to_string(), version);
        let key = (self.name.clone(), name.to_string());
        let cached = {
            let mut m = self.shared.memory.lock().unwrap_or_else(|e| e.into_inner());
            m.enabled().then(|| m.get(&key, &stamp))
        };
        match cached {
            None => return delta().await,
            Some(Some(hit)) => return Ok(hit),
            Some(None) => {}
        }
        let bytes: i64 = snapshot.log_data().iter().map(|f| f.size()).sum();
        let wanted = self
            .shared
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .should_load(&key, &stamp, bytes.max(0) as u64);
        let provider = match delta().await {
            Ok(p) => p,
            Err(e) => {
                if wanted {
                    let mut m = self.shared.memory.lock();
                    m.as_mut().unwrap_or_else(|e| e.get_mut()).abandon(&key);
                }
                return Err(e);
            }
        };
        if !wanted {
            return Ok(provider);
        }
        let state = self.shared.session.get().and_then(|f| f());
        let loaded = match state {
            Some(state) => super::table_cache::load(provider.clone(), &state).await,
            None => Err(DataFusionError::Internal(
                "catalog used without a session".into(),
            )),
        };
        let mut m = self.shared.memory.lock().unwrap_or_else(|e| e.into_inner());
        match loaded {
            Ok((cached, bytes)) => {
                let index_bytes = cached.index_bytes();
                let cached: Arc<dyn TableProvider> = Arc::new(cached);
                m.insert(key, stamp, cached.clone(), bytes, index_bytes);
                Ok(cached)
            }
            Err(e) => {
                tracing::debug!("{}.{name} not kept in memory: {e}", self.name);
                m.failed(&key, &stamp);
                Ok(provider)
            }
        }
    }

    fn remember(&self, name: &str) {
        if let Ok(mut l) = self.listed.write() {
            if !l.iter().any(|n| n == name) {
                l.push(name.to_string());
            }
        }
    }

    /// Lists the schema's stored tables and views once (the trait's
    /// `table_names` is synchronous: this blocks in place, which needs the
    /// multi-threaded runtime every sluice entry point uses).
    fn list_storage(&self) {
        use std::sync::atomic::Ordering;
        if self.complete.load(Ordering::Acquire) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return;
        }
        let wh = &self.shared.warehouse;
        let found = tokio::task::block_in_place(|| {
            handle.block_on(async {
                let mut t = wh.list_tables(&self.name).await?;
                t.extend(wh.list_views(&self.name).await?);
                Ok::<_, crate::Error>(t)
            })
        });
        match found {
            Ok(tables) => {
                for t in tables {
                    self.remember(&t);
                }
                self.complete.store(true, Ordering::Release);
            }
            Err(e) => tracing::warn!("cannot list schema {}: {e}", self.name),
        }
    }

    fn new(shared: Arc<Shared>, name: String, listed: Vec<String>) -> Self {
        WarehouseSchema {
            shared,
            name,
            listed: RwLock::new(listed),
            complete: Default::default(),
            local: MemorySchemaProvider::new(),
        }
    }
}

#[async_trait]
impl SchemaProvider for WarehouseSchema {
    fn table_names(&self) -> Vec<String> {
        self.list_storage();
        let mut names = self.listed.read().map(|l| l.clone()).unwrap_or_default();
        for n in self.local.table_names() {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(t) = self.local.table(name).await? {
            return Ok(Some(t));
        }
        if !super::is_identifier(name) {
            return Ok(None);
        }
        let pinned = self
            .shared
            .pinned
            .read()
            .ok()
            .and_then(|p| p.get(&(self.name.clone(), name.to_string())).cloned());
        if let Some(table) = pinned {
            let qualified = format!("{}.{name}", self.name);
            return Ok(Some(self.shared.delta_provider(&qualified, table).await?));
        }
        let warehouse = &self.shared.warehouse;
        let key = (self.name.clone(), name.to_string());
        let cached = self
            .shared
            .snapshots
            .read()
            .ok()
            .and_then(|s| s.get(&key).cloned());
        if let Some((table, stamp)) = cached {
            let latest = warehouse
                .latest_stamp(&self.name, name, table.version())
                .await?;
            if latest.as_ref() == Some(&stamp) {
                return self.provider(name, &table).await.map(Some);
            }
        }
        if let Some(table) = warehouse.open_table(&self.name, name).await? {
            self.remember(name);
            let stamp = match table.version() {
                Some(v) => warehouse.commit_stamp(&self.name, name, v).await?,
                None => None,
            };
            if let (Some(stamp), Ok(mut s)) = (stamp, self.shared.snapshots.write()) {
                s.insert(key, (table.clone(), stamp));
            }
            return self.provider(name, &table).await.map(Some);
        }
        if let Some(view) = warehouse.get_view(&self.name, name).await? {
            let Some(state) = self.shared.session.get().and_then(|f| f()) else {
                return Err(DataFusionError::Internal(
                    "catalog used without a session".into(),
                ));
            };
            let provider = SqlView::try_new(view.sql, &state).await.map_err(|e| {
                DataFusionError::Plan(format!(
                    "view {}.{name} no longer plans ({e}); re-run the model that creates it",
                    self.name
                ))
            })?;
            self.remember(name);
            return Ok(Some(Arc::new(provider)));
        }
        if self.name == self.shared.default_schema {
            let target = self
                .shared
                .aliases
                .read()
                .ok()
                .and_then(|a| a.get(name).cloned());
            if let Some((schema, table)) = target {
                if schema != self.name {
                    let state = self.shared.session.get().and_then(|f| f());
                    if let Some(state) = state {
                        let provider = state
                            .catalog_list()
                            .catalog(super::CATALOG)
                            .and_then(|c| c.schema(&schema));
                        if let Some(p) = provider {
                            return p.table(&table).await;
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        self.local.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        self.local.deregister_table(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.local.table_exist(name)
            || self
                .listed
                .read()
                .map(|l| l.iter().any(|n| n == name))
                .unwrap_or(false)
    }
}
