//! The warehouse as a DataFusion catalog: schema `x`, table `y` is the Delta
//! table at `<root>/x/y/`, found without registering anything.

use super::Warehouse;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Catalog over all schemas of a warehouse.
#[derive(Debug)]
pub struct WarehouseCatalog {
    warehouse: Warehouse,
    schemas: RwLock<BTreeMap<String, Arc<WarehouseSchema>>>,
}

impl WarehouseCatalog {
    /// Lists the warehouse once; tables created later are still found by name.
    pub async fn try_new(warehouse: Warehouse, extra_schemas: &[String]) -> crate::Result<Self> {
        let mut schemas = BTreeMap::new();
        let mut names = warehouse.list_schemas().await?;
        names.extend(extra_schemas.iter().cloned());
        for name in names {
            if schemas.contains_key(&name) {
                continue;
            }
            let tables = warehouse.list_tables(&name).await?;
            schemas.insert(
                name.clone(),
                Arc::new(WarehouseSchema::new(warehouse.clone(), name, tables)),
            );
        }
        Ok(WarehouseCatalog {
            warehouse,
            schemas: RwLock::new(schemas),
        })
    }
}

impl CatalogProvider for WarehouseCatalog {
    fn schema_names(&self) -> Vec<String> {
        match self.schemas.read() {
            Ok(s) => s.keys().cloned().collect(),
            Err(_) => Vec::new(),
        }
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
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
            self.warehouse.clone(),
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
            self.warehouse.clone(),
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

/// One schema: Delta tables found in storage, plus session-local tables.
#[derive(Debug)]
pub struct WarehouseSchema {
    warehouse: Warehouse,
    name: String,
    listed: RwLock<Vec<String>>,
    /// Tables registered in this session only (not persisted).
    local: MemorySchemaProvider,
}

impl WarehouseSchema {
    fn new(warehouse: Warehouse, name: String, listed: Vec<String>) -> Self {
        WarehouseSchema {
            warehouse,
            name,
            listed: RwLock::new(listed),
            local: MemorySchemaProvider::new(),
        }
    }
}

#[async_trait]
impl SchemaProvider for WarehouseSchema {
    fn table_names(&self) -> Vec<String> {
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
        let Some(table) = self.warehouse.open_table(&self.name, name).await? else {
            return Ok(None);
        };
        if let Ok(mut l) = self.listed.write() {
            if !l.iter().any(|n| n == name) {
                l.push(name.to_string());
            }
        }
        let provider = table
            .table_provider()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Some(provider))
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
