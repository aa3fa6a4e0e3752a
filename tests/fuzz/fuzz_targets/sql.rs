//! The SQL front end: sluice's dialect, the AS OF and time-travel rewrites,
//! the depth check, dependency inference for models, and planning (logical,
//! optimized, physical) against a small warehouse with Delta tables (two
//! versions), a view and an AS OF-joinable pair.
//!
//! Invariant: no input panics, overflows the stack or aborts; every statement
//! is planned or refused with an error. The work runs on a 64 MiB stack, as in
//! the CLI and the server (`THREAD_STACK` in `src/main.rs`).
//!
//! URL tables, `read_csv` and friends read files while planning: the session's
//! `file://` object store is replaced by an empty in-memory store, so that no
//! input reads (or lists) this machine's files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::sql::{Engine, EngineOptions};
use std::sync::OnceLock;

/// The stack of the CLI's and the server's SQL threads.
const THREAD_STACK: usize = 64 << 20;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    engine: Engine,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

const SETUP: &[&str] = &[
    "CREATE TABLE main.prices AS SELECT * FROM (VALUES (1, 10.0, TIMESTAMP '2026-01-01T00:00:00'), (2, 20.0, TIMESTAMP '2026-01-02T00:00:00')) t(id, price, ts)",
    "INSERT INTO main.prices VALUES (3, 30.0, TIMESTAMP '2026-01-03T00:00:00')",
    "CREATE TABLE main.events AS SELECT * FROM (VALUES (1, TIMESTAMP '2026-01-02T12:00:00', 'a'), (3, TIMESTAMP '2026-01-04T00:00:00', NULL)) t(id, ts, kind)",
    "CREATE TABLE raw.users (user_id BIGINT NOT NULL, country VARCHAR, signup DATE)",
    "CREATE VIEW main.recent AS SELECT * FROM prices WHERE id > 1",
];

fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_stack_size(THREAD_STACK)
            .enable_all()
            .build()
            .expect("a runtime");
        let engine = runtime.block_on(async {
            let wh = sluice::warehouse::Warehouse::open("memory:///", &Default::default())
                .expect("a memory warehouse");
            // A small memory limit: capped functions (repeat, lpad, ...) refuse
            // huge constant results while folding.
            let options = EngineOptions {
                memory_limit: Some(256 << 20),
                ..Default::default()
            };
            let engine = Engine::with_options(wh, "main", &options)
                .await
                .expect("an engine");
            for sql in SETUP {
                engine
                    .execute(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            let local = url::Url::parse("file://").expect("a URL");
            engine.context().runtime_env().register_object_store(
                &local,
                std::sync::Arc::new(object_store::memory::InMemory::new()),
            );
            engine
        });
        Fixture { runtime, engine }
    })
}

fn plan(sql: String) {
    let _ = sluice::sql::split_statements(&sql);
    let _ = sluice::sql::deps::model_relations(&sql, &Default::default());
    let f = fixture();
    f.runtime.block_on(async {
        let Ok(plan) = f.engine.plan(&sql).await else {
            return;
        };
        let state = f.engine.context().state();
        // Optimizes, then plans physically; DDL and DML are not run.
        let _ = state.create_physical_plan(&plan).await;
    });
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let sql = sql.to_string();
    fixture();
    let worker = std::thread::Builder::new()
        .stack_size(THREAD_STACK)
        .spawn(move || plan(sql))
        .expect("a thread");
    if let Err(panic) = worker.join() {
        std::panic::resume_unwind(panic);
    }
});
