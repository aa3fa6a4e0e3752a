//! Project files: `sluice.toml`, catalog source declarations
//! (`catalog/*.toml`) and `schema.yml` properties (model config, generic
//! tests, sources), as the project loader and the model compiler read them.
//!
//! Input: one byte choosing the file kind, then its text.
//!
//! Invariant: no text panics; each is accepted or refused with a
//! configuration error that names the file. An accepted source has one-byte
//! delimiter and quote and typed columns; an accepted model config validates
//! or is refused with a message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::models::config::{Materialization, ModelConfig};
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

fuzz_target!(|data: &[u8]| {
    let [kind, text @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    match kind % 3 {
        0 => project_toml(text),
        1 => catalog_toml(text),
        _ => schema_yml(text),
    }
    let _ = sluice::models::config::parse_duration(text);
    let _ = sluice::project::parse_type(text);
});
