//! Project files: `sluice.toml`, catalog source declarations
//! (`catalog/*.toml`), `schema.yml` properties (model config, generic tests,
//! sources) and model headers (`{{ config(...) }}`), as the project loader and
//! the model compiler read them.
//!
//! Input: one byte choosing the file kind, then its text.
//!
//! Invariant: no text panics; each is accepted or refused with a
//! configuration error that names the file. An accepted source has one-byte
//! delimiter and quote and typed columns; an accepted model config validates
//! or is refused with a message; a template error names the model's file.
//!
//! Templates are code the project's author runs: one that loops for ever or
//! builds a huge string is not a bug in sluice. Model texts with `{%`
//! statements, `*` or numbers of five digits or more are skipped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::models::config::{Materialization, ModelConfig};
use sluice::models::jinja::{self, RenderContext};
use sluice::models::schema_yml;
use sluice::project::ProjectConfig;
use std::path::{Path, PathBuf};

fn refused_by_name(e: &sluice::Error, file: &str) {
    let message = e.to_string();
    assert!(
        message.contains(file),
        "the error does not name {file}: {message}"
    );
}

fn project_toml(text: &str) {
    let file = Path::new("sluice.toml");
    match ProjectConfig::parse(text, file) {
        Ok(cfg) => assert!(sluice::warehouse::is_identifier(
            &cfg.warehouse.default_schema
        )),
        Err(e) => refused_by_name(&e, "sluice.toml"),
    }
}

fn catalog_toml(text: &str) {
    let mut sources = Vec::new();
    match sluice::fuzzing::parse_catalog(text, Path::new("catalog/sources.toml"), &mut sources) {
        Ok(()) => {
            for s in &sources {
                assert!(s.csv.delimiter_byte().is_some() && s.csv.quote_byte().is_some());
                assert!(s.columns.iter().all(|c| c.data_type.is_some()));
                let _ = s.target_name();
            }
        }
        Err(e) => refused_by_name(&e, "sources.toml"),
    }
}

fn schema_yml(text: &str) {
    let props = match schema_yml::parse(text, PathBuf::from("models/schema.yml")) {
        Ok(p) => p,
        Err(e) => return refused_by_name(&e, "schema.yml"),
    };
    for model in props.models.iter().chain(&props.seeds) {
        let mut config = ModelConfig::defaults(Materialization::Table);
        if let Some(map) = &model.config {
            if config.apply(map).is_ok() {
                let _ = config.validate();
                let _ = config.strategy();
            }
        }
        let tests = model.tests.iter().chain(&model.data_tests);
        let column_tests = model
            .columns
            .iter()
            .flat_map(|c| c.tests.iter().chain(&c.data_tests));
        for t in tests.chain(column_tests) {
            let _ = schema_yml::parse_test(t);
        }
    }
}

fn model_header(text: &str) {
    if text.contains("{%") || text.contains('*') {
        return;
    }
    let digits = text.split(|c: char| !c.is_ascii_digit()).map(str::len);
    if digits.max().unwrap_or(0) >= 5 {
        return;
    }
    let ctx = RenderContext {
        this: "staging.orders".into(),
        model_name: "orders".into(),
        ..RenderContext::echo("orders", "raw")
    };
    match jinja::render("sql/staging/orders.sql", text, &ctx) {
        Ok(rendered) => {
            let map = rendered.config.into_iter().collect();
            let mut config = ModelConfig::defaults(Materialization::Table);
            if config.apply(&map).is_ok() {
                let _ = config.validate();
            }
            let _ = sluice::sql::deps::model_relations(&rendered.sql, &Default::default());
        }
        // An error is located in the model, or in one of dbt's built-in macros it called.
        Err(e) => assert!(
            e.file == "sql/staging/orders.sql" || e.file.starts_with("dbt/"),
            "{}",
            e.file
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let [kind, text @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    match kind % 4 {
        0 => project_toml(text),
        1 => catalog_toml(text),
        2 => schema_yml(text),
        _ => model_header(text),
    }
    let _ = sluice::models::config::parse_duration(text);
    let _ = sluice::project::parse_type(text);
});
