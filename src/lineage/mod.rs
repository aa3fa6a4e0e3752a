//! Lineage as standard events: OpenLineage run events of loads, model runs
//! and materializations ([`openlineage`]). Plain data and transport; the
//! layers above decide what a run read and wrote.

pub mod openlineage;
