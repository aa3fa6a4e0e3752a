//! Streaming feature views: windowed aggregates over a streaming source, kept
//! fresh online after every micro-batch, and the same definition computed
//! point-in-time correctly offline for training sets.
//!
//! ## The definition ([`spec`])
//!
//! A model whose config has `feature_view={'entities': [...], 'event_timestamp':
//! 'ts', 'stream': true}` and whose SQL is
//!
//! ```sql
//! SELECT user_id,
//!        count(*)    FILTER (WHERE ts > now() - INTERVAL '10 minutes') AS txn_count_10m,
//!        sum(amount) FILTER (WHERE ts > now() - INTERVAL '1 hour')    AS amount_1h
//! FROM raw.events
//! WHERE kind = 'payment'
//! GROUP BY user_id
//! ```
//!
//! **Semantics.** The value for an entity as of instant `T` aggregates the
//! events that pass the row filter and whose event timestamp is in the
//! half-open window `(T - w, T]`: `now()` *is* `T`. Run as a plain batch query
//! the SQL gives the values at `T = now` (when no event is in the future). A
//! day is 24 hours (the same as DataFusion's on UTC or zone-less timestamps).
//! An entity with no event in a window gets count 0 and NULL for
//! sum/avg/min/max; an entity with no event at all (never seen, or all its
//! events expired) gets the same, everywhere: online ([`StreamAggState::value`])
//! and offline ([`offline_sql`], a label with no event), so expiry never shows.
//! Types are DataFusion's: counts Int64; `sum` Int64 over signed integers,
//! UInt64 over unsigned ones, Float64 over floats; `avg` Float64; `min`/`max`
//! the input type (integers, floats, timestamps, dates). Decimals and other
//! types are refused with a hint to cast. An integer sum that does not fit its
//! type is an error (sluice's checked `sum` too; the online sum is exact in
//! `i128`, so it fails only when the final value does not fit).
//!
//! ## The online state ([`StreamAggState`])
//!
//! Exact, with these costs. Entities are keyed by the Arrow row bytes of
//! their entity columns (converted once per batch; the online store keys
//! them by the same bytes). Per entity it keeps the raw events of the longest
//! window plus the allowed lateness, flat and in time order (times, and the
//! argument values, in two queues: no allocation per event) and, per tile
//! width, **tiles** of partial aggregates (row count; per argument: count,
//! sum, min, max). A window of length `w` uses tiles of `w/60` rounded to
//! whole seconds (at least one second); tile `k` covers `(k*t, (k+1)*t]`.
//! Tiles are optional ([`StreamAggState::keep_tiles`]): the ingester, which
//! only collects events for the online store, and a reader's state decoded
//! for one lookup keep none, and a value then reads the window's events.
//!
//! - **apply**: per event, one hash lookup of its entity, an append (a
//!   binary-search insert when out of order) and one tile update per tile
//!   width, independent of the window lengths.
//! - **value at `T`**: per aggregate, the whole tiles inside `(T - w, T]`
//!   (about 60) plus the raw events of the two partial tiles at its edges,
//!   read from the event map by range. Exact for any `T`, not only the newest,
//!   which is why raw events are kept for the whole window: every tile can
//!   become an edge tile as `T` moves. Nothing is ever subtracted, so float
//!   sums do not drift.
//! - **memory**: the events of the longest window (+ lateness) per entity,
//!   plus about 60 tiles per window length.
//!
//! **Late and out-of-order events.** Events may arrive in any order. The
//! *horizon* is `newest event time seen - longest window - allowed lateness`
//! (and at least the last [`StreamAggState::expire`] cut); `apply` first
//! takes the newest time of the whole batch, so the order of rows inside a
//! batch never matters (a first batch spanning more than the longest window
//! plus the lateness keeps only its recent part). An event at or
//! before the horizon is *too late*: it is counted in
//! [`ApplyStats::too_late`] and not applied. It is in the Delta table, so
//! offline values include it; online values never will. To stay exact, the
//! state refuses values at instants before
//! [`StreamAggState::earliest_exact_us`] (the newest event it ever dropped,
//! too late or expired, plus the longest window): the only instants a dropped
//! event could change. Apply also prunes, in the entities it touches, the
//! events at or before the horizon; [`StreamAggState::expire`] sweeps all. The horizon follows the newest
//! event time, so a single event far in the future makes everything else
//! late: choose `allowed_lateness_us` for the source's disorder.
//!
//! **Row filter.** [`StreamAggState::apply`] takes the source's rows
//! unfiltered and evaluates the row filter and the aggregate arguments with
//! DataFusion (planned once from the same SQL text), so they mean exactly
//! what they mean offline. Rows with a NULL entity column or event timestamp
//! are skipped (no label can match them), as are event times outside
//! ±2^62 µs ([`ApplyStats::out_of_range`]), so window arithmetic cannot
//! overflow; instants outside that range are refused.
//!
//! **Encoding.** [`StreamAggState::encode_entity`] /
//! [`StreamAggState::decode_entity`] store one entity's events as versioned
//! bytes (see `state::codec`), for Redis or a file; tiles are rebuilt on
//! decode.
//!
//! ## Offline ([`offline_sql`])
//!
//! One DataFusion query: labels `LEFT JOIN` the filtered events on the
//! entities and `T - longest window < ts <= T`, grouped per label row, each
//! aggregate with `FILTER (WHERE ts > T - w)`. The randomized differential
//! test in this module compares it with the online state.

mod offline;
mod spec;
mod state;

pub use offline::offline_sql;
pub use spec::{AggFunc, StreamAgg, StreamAggSpec, MAX_WINDOW_US};
pub use state::{key_columns, ApplyStats, EntityKey, KeyMap, StreamAggOptions, StreamAggState};

#[cfg(test)]
mod tests;
