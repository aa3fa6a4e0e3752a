//! The online state against the offline SQL run by DataFusion, on random
//! event streams (several entities, out-of-order, late and too-late events,
//! duplicate times, events on window edges, NULLs), fed in random
//! micro-batches; and the state's own contracts (types, lateness, expiry,
//! encoding).

use super::*;
use datafusion::arrow::array::{
    Array, ArrayRef, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, TimestampNanosecondArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use std::sync::Arc;

/// splitmix64: a small deterministic generator (seeds are printed on failure).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

fn source_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("region", DataType::Utf8, true),
        Field::new("kind", DataType::Utf8, true),
        Field::new("amount", DataType::Int32, true),
        Field::new("price", DataType::Float64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
    ]))
}

#[derive(Clone, Debug)]
struct Event {
    user_id: Option<i64>,
    region: Option<&'static str>,
    kind: Option<&'static str>,
    amount: Option<i32>,
    price: Option<f64>,
    ts: Option<i64>,
}

fn batch_of(events: &[Event]) -> RecordBatch {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(
            events.iter().map(|e| e.user_id).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            events.iter().map(|e| e.region).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        )),
        Arc::new(Int32Array::from(
            events.iter().map(|e| e.amount).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            events.iter().map(|e| e.price).collect::<Vec<_>>(),
        )),
        Arc::new(TimestampMicrosecondArray::from(
            events.iter().map(|e| e.ts).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(source_schema(), cols).unwrap()
}

const SEC: i64 = 1_000_000;
const START: i64 = 1_700_000_000 * SEC;

/// Windows of the test view (µs), for edge cases.
const WINDOWS: &[i64] = &[
    10 * SEC,
    SEC / 2,
    7 * SEC,
    60 * SEC,
    300 * SEC,
    90 * SEC,
    61 * SEC,
    2_500_000,
    180 * SEC,
];

fn view_sql(entities: &str) -> String {
    format!(
        "SELECT {entities},
  count(*) FILTER (WHERE ts > now() - INTERVAL '10 seconds') AS n_10s,
  count(*) FILTER (WHERE ts > now() - INTERVAL '500 milliseconds') AS n_500ms,
  count(price) FILTER (WHERE ts > now() - INTERVAL '7 seconds') AS n_price_7s,
  sum(amount) FILTER (WHERE ts > now() - INTERVAL '1 minute') AS amount_1m,
  avg(amount) FILTER (WHERE ts > now() - INTERVAL '5 minutes') AS avg_amount_5m,
  max(amount) FILTER (WHERE ts > now() - INTERVAL '1 minute') AS max_amount_1m,
  min(price) FILTER (WHERE ts > now() - INTERVAL '90 seconds') AS min_price_90s,
  sum(price) FILTER (WHERE ts > now() - INTERVAL '61 seconds') AS price_61s,
  avg(price * 2) FILTER (WHERE ts > now() - INTERVAL '2.5 seconds') AS avg_price2_2500ms,
  max(ts) FILTER (WHERE current_timestamp - INTERVAL '3' MINUTE < ts) AS last_ts_3m,
  min(amount) FILTER (WHERE ts > now() - INTERVAL '1 minute') AS min_amount_1m,
  sum(coalesce(amount, 1)) FILTER (WHERE ts > now() - INTERVAL '30 seconds') AS amount_or_one_30s
FROM raw.events
WHERE coalesce(kind, 'payment') <> 'refund'
GROUP BY {entities}"
    )
}

/// A random stream: event times advance irregularly; most events are in
/// order, some a little late, some minutes late (past the allowed lateness),
/// some at the exact time of an earlier event or exactly a window after it.
fn random_events(rng: &mut Rng, n: usize, exact_floats: bool) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::with_capacity(n);
    let mut clock = START;
    for _ in 0..n {
        clock += rng.range(0, 4 * SEC);
        let mut ts = match rng.below(100) {
            0..=64 => clock,
            65..=84 => clock - rng.range(0, 60 * SEC),
            85..=92 => clock - rng.range(0, 420 * SEC),
            _ => clock - rng.range(0, 999),
        };
        if !events.is_empty() && rng.percent(12) {
            let other = events[rng.below(events.len() as u64) as usize]
                .ts
                .unwrap_or(clock);
            ts = if rng.percent(50) {
                other
            } else {
                other + WINDOWS[rng.below(WINDOWS.len() as u64) as usize]
            };
            ts = ts.min(clock);
        }
        if rng.percent(15) {
            // On tile boundaries (tiles are whole seconds).
            ts -= ts.rem_euclid(if rng.percent(50) { SEC } else { 5 * SEC });
        }
        let price = if exact_floats {
            rng.range(-400, 4000) as f64 * 0.25
        } else {
            (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * 1000.0 - 100.0
        };
        events.push(Event {
            user_id: (!rng.percent(2)).then(|| rng.range(1, 4)),
            region: Some(if rng.percent(50) { "eu" } else { "us" }),
            kind: match rng.below(10) {
                0..=6 => Some("payment"),
                7 | 8 => Some("refund"),
                _ => None,
            },
            amount: (!rng.percent(10)).then(|| rng.range(-100, 1000) as i32),
            price: (!rng.percent(10)).then_some(price),
            ts: (!rng.percent(2)).then_some(ts),
        });
    }
    events
}

/// Offline values for `labels` (label_id, entity columns, t) over `events`.
async fn offline(spec: &StreamAggSpec, events: &[RecordBatch], labels: RecordBatch) -> RecordBatch {
    let ctx = SessionContext::new();
    ctx.catalog("datafusion")
        .unwrap()
        .register_schema("raw", Arc::new(MemorySchemaProvider::new()))
        .unwrap();
    ctx.register_table(
        "raw.events",
        Arc::new(MemTable::try_new(source_schema(), vec![events.to_vec()]).unwrap()),
    )
    .unwrap();
    let schema = labels.schema();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    ctx.register_table(
        "labels",
        Arc::new(MemTable::try_new(schema, vec![vec![labels]]).unwrap()),
    )
    .unwrap();
    let sql = offline_sql(spec, "labels", "t", &names);
    let df = ctx.sql(&sql).await.unwrap_or_else(|e| panic!("{e}\n{sql}"));
    let batches = df.collect().await.unwrap_or_else(|e| panic!("{e}\n{sql}"));
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| panic!("no result\n{sql}"));
    concat_batches(&schema, &batches).unwrap()
}

fn close(a: &ScalarValue, b: &ScalarValue) -> bool {
    match (a, b) {
        (ScalarValue::Float64(Some(x)), ScalarValue::Float64(Some(y))) => {
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        _ => a == b,
    }
}

/// Feeds a random stream in random micro-batches and, after each, compares
/// the online values with the offline SQL at many instants for every key
/// (plus an unknown one). Returns (checked values, too-late events).
async fn differential(seed: u64, two_entities: bool, exact_floats: bool) -> (usize, u64) {
    let mut rng = Rng(seed);
    let entities: Vec<String> = if two_entities {
        vec!["user_id".into(), "region".into()]
    } else {
        vec!["user_id".into()]
    };
    let sql = view_sql(&entities.join(", "));
    let spec = StreamAggSpec::parse("txn_stats", &sql, &entities, "ts").unwrap();
    let options = StreamAggOptions {
        allowed_lateness_us: 30 * SEC,
    };
    let mut state = StreamAggState::new(spec.clone(), source_schema(), options).unwrap();
    // With and without tiles, and switched half-way (seeds 3 and 7).
    state.keep_tiles(!matches!(seed, 2 | 7));
    let all = random_events(&mut rng, 500, exact_floats);
    let mut fed: Vec<RecordBatch> = Vec::new();
    let mut fed_events: Vec<Event> = Vec::new();
    let mut at = 0;
    let (mut checked, mut too_late) = (0usize, 0u64);
    let mut keys: Vec<Vec<ScalarValue>> = Vec::new();
    for user in [1, 2, 3, 4, 99] {
        if two_entities {
            for region in ["eu", "us"] {
                keys.push(vec![
                    ScalarValue::Int64(Some(user)),
                    ScalarValue::Utf8(Some(region.into())),
                ]);
            }
        } else {
            keys.push(vec![ScalarValue::Int64(Some(user))]);
        }
    }
    let mut round = 0;
    while at < all.len() {
        let n = (rng.range(1, 40) as usize).min(all.len() - at);
        let chunk = &all[at..at + n];
        at += n;
        let batch = batch_of(chunk);
        if at > all.len() / 2 && matches!(seed, 3 | 7) {
            state.keep_tiles(seed == 7);
        }
        let stats = state.apply(&batch).unwrap();
        assert_eq!(stats.rows, n as u64);
        assert_eq!(
            stats.filtered_out
                + stats.null_key
                + stats.null_timestamp
                + stats.out_of_range
                + stats.too_late
                + stats.applied,
            n as u64,
            "{stats:?}"
        );
        too_late += stats.too_late;
        fed.push(batch);
        fed_events.extend_from_slice(chunk);
        round += 1;
        if round % 2 == 1 && at < all.len() {
            continue;
        }
        // Sometimes expire, and sometimes rebuild every entity from its
        // encoded bytes: neither may change a value the state still gives.
        let newest = state.max_event_us().unwrap_or(START);
        if rng.percent(30) {
            state.expire(newest - rng.range(0, 120 * SEC));
        }
        if rng.percent(30) {
            for k in &keys {
                if let Some(bytes) = state.encode_entity(k) {
                    state.decode_entity(k.clone(), &bytes).unwrap();
                }
            }
        }
        // Instants: edges around fed events, and random ones, all in the
        // range the state answers exactly.
        let earliest = state.earliest_exact_us().unwrap_or(START - 10 * SEC);
        let latest = newest.max(earliest) + 20 * SEC;
        let mut instants: Vec<i64> = Vec::new();
        for _ in 0..10 {
            let e = &fed_events[rng.below(fed_events.len() as u64) as usize];
            let Some(ts) = e.ts else { continue };
            let w = WINDOWS[rng.below(WINDOWS.len() as u64) as usize];
            instants.extend([ts, ts - 1, ts + w, ts + w - 1, ts + w + 1]);
        }
        for _ in 0..6 {
            instants.push(rng.range(earliest, latest));
            let t = rng.range(earliest, latest);
            instants.push(t - t.rem_euclid(SEC));
        }
        instants.push(newest);
        instants.retain(|&t| t >= earliest);
        if let Some(e) = state.earliest_exact_us() {
            let err = state.value(&keys[0], e - 1).unwrap_err().to_string();
            assert!(
                err.contains("txn_stats") && err.contains("cannot give the value"),
                "{err}"
            );
        }
        // Labels: (label_id, entities..., t); duplicates on purpose.
        let mut label_keys = Vec::new();
        let mut label_ts = Vec::new();
        for &t in &instants {
            for k in &keys {
                label_keys.push(k.clone());
                label_ts.push(t);
            }
        }
        label_keys.push(keys[0].clone());
        label_ts.push(instants[0]);
        let mut fields = vec![Field::new("label_id", DataType::Int64, false)];
        let mut cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(
            0..label_keys.len() as i64,
        ))];
        for (i, e) in entities.iter().enumerate() {
            let col = ScalarValue::iter_to_array(label_keys.iter().map(|k| k[i].clone())).unwrap();
            fields.push(Field::new(e, col.data_type().clone(), true));
            cols.push(col);
        }
        fields.push(Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ));
        cols.push(Arc::new(TimestampMicrosecondArray::from(label_ts.clone())));
        let labels = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
        let result = offline(&spec, &fed, labels).await;
        assert_eq!(
            result.num_rows(),
            label_keys.len(),
            "one row per label, duplicates kept"
        );
        let first_agg = result.num_columns() - spec.aggregates.len();
        // Types: the offline result's are the online state's.
        for (i, a) in spec.aggregates.iter().enumerate() {
            let field = result.schema().field(first_agg + i).clone();
            assert_eq!(field.name(), &a.alias);
            assert_eq!(
                field.data_type(),
                state.output_schema().field(entities.len() + i).data_type(),
                "type of {}",
                a.alias
            );
        }
        let ids = result
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        for row in 0..result.num_rows() {
            let id = ids.value(row) as usize;
            let online = state.value(&label_keys[id], label_ts[id]).unwrap();
            for (i, a) in spec.aggregates.iter().enumerate() {
                let off = ScalarValue::try_from_array(result.column(first_agg + i), row).unwrap();
                let ok = if exact_floats {
                    online[i] == off
                } else {
                    close(&online[i], &off)
                };
                assert!(
                    ok,
                    "seed {seed}: `{}` for {:?} at {}: online {:?}, offline {:?}",
                    a.alias, label_keys[id], label_ts[id], online[i], off
                );
                checked += 1;
            }
        }
        // The batch API gives the same values.
        let keyed: Vec<Event> = chunk
            .iter()
            .filter(|e| e.user_id.is_some())
            .cloned()
            .collect();
        let probe = state.values(&batch_of(&keyed), newest).unwrap();
        assert_eq!(probe.schema(), state.output_schema());
        assert_eq!(probe.num_rows(), keyed.len());
        for row in 0..probe.num_rows() {
            let key: Vec<ScalarValue> = (0..entities.len())
                .map(|i| ScalarValue::try_from_array(probe.column(i), row).unwrap())
                .collect();
            let one = state.value(&key, newest).unwrap();
            for (i, v) in one.iter().enumerate() {
                let got =
                    ScalarValue::try_from_array(probe.column(entities.len() + i), row).unwrap();
                assert_eq!(&got, v);
            }
        }
    }
    (checked, too_late)
}

#[tokio::test]
async fn online_equals_offline_on_random_streams() {
    let mut total = 0;
    let mut late = 0;
    for seed in [1, 2, 3] {
        let (checked, too_late) = differential(seed, false, true).await;
        total += checked;
        late += too_late;
    }
    let (checked, too_late) = differential(7, true, true).await;
    total += checked;
    late += too_late;
    // The streams exercise lateness, and many values were compared.
    println!("compared {total} values, {late} events too late");
    assert!(late > 0, "no event was too late");
    assert!(total > 10_000, "only {total} values compared");
}

/// Arbitrary floats: sums are added in a different order online (tiles) and
/// offline (hash aggregation), so they agree to a relative 1e-9, not bit for
/// bit; everything else is still exact.
#[tokio::test]
async fn online_equals_offline_with_arbitrary_floats() {
    let (checked, _) = differential(11, false, false).await;
    assert!(checked > 1_000);
}

fn simple_state(
    sql: &str,
    schema: SchemaRef,
    lateness: i64,
) -> Result<StreamAggState, crate::Error> {
    let spec = StreamAggSpec::parse("m", sql, &["user_id".to_string()], "ts")?;
    StreamAggState::new(
        spec,
        schema,
        StreamAggOptions {
            allowed_lateness_us: lateness,
        },
    )
}

fn ev(user: i64, amount: i32, ts: i64) -> Event {
    Event {
        user_id: Some(user),
        region: Some("eu"),
        kind: Some("payment"),
        amount: Some(amount),
        price: Some(amount as f64),
        ts: Some(ts),
    }
}

const TWO: &str = "SELECT user_id, count(*) FILTER (WHERE ts > now() - INTERVAL '10 seconds') AS n, sum(amount) FILTER (WHERE ts > now() - INTERVAL '1 minute') AS s FROM raw.events GROUP BY user_id";

#[test]
fn tile_widths() {
    assert_eq!(super::state::tile_width_us(600 * SEC), 10 * SEC);
    assert_eq!(super::state::tile_width_us(3_600 * SEC), 60 * SEC);
    assert_eq!(super::state::tile_width_us(86_400 * SEC), 1_440 * SEC);
    assert_eq!(super::state::tile_width_us(SEC / 2), SEC);
    assert_eq!(super::state::tile_width_us(90 * SEC), 2 * SEC);
}

#[test]
fn windows_are_half_open_and_unknown_entities_get_zero() {
    let mut s = simple_state(TWO, source_schema(), 0).unwrap();
    s.apply(&batch_of(&[ev(1, 5, START), ev(1, 7, START + 10 * SEC)]))
        .unwrap();
    let k = [ScalarValue::Int64(Some(1))];
    // (T - 10 s, T]: at START + 10 s the event at START is out, the other in.
    assert_eq!(
        s.value(&k, START + 10 * SEC).unwrap(),
        vec![ScalarValue::Int64(Some(1)), ScalarValue::Int64(Some(12))]
    );
    assert_eq!(
        s.value(&k, START + 10 * SEC - 1).unwrap(),
        vec![ScalarValue::Int64(Some(1)), ScalarValue::Int64(Some(5))]
    );
    assert_eq!(
        s.value(&[ScalarValue::Int64(Some(2))], START + 10 * SEC)
            .unwrap(),
        vec![ScalarValue::Int64(Some(0)), ScalarValue::Int64(None)]
    );
    assert!(s
        .value(&[], START)
        .unwrap_err()
        .to_string()
        .contains("entities are user_id"));
}

#[test]
fn too_late_events_are_counted_and_not_applied() {
    let mut s = simple_state(TWO, source_schema(), 5 * SEC).unwrap();
    s.apply(&batch_of(&[ev(1, 1, START + 100 * SEC)])).unwrap();
    // Horizon: newest - 60 s - 5 s.
    let stats = s
        .apply(&batch_of(&[
            ev(1, 2, START + 35 * SEC),
            ev(1, 4, START + 36 * SEC),
        ]))
        .unwrap();
    assert_eq!((stats.too_late, stats.applied), (1, 1));
    assert_eq!(s.earliest_exact_us(), Some(START + 95 * SEC));
    let k = [ScalarValue::Int64(Some(1))];
    // (START + 35 s, START + 95 s]: the applied event only.
    assert_eq!(
        s.value(&k, START + 95 * SEC).unwrap()[1],
        ScalarValue::Int64(Some(4))
    );
    assert!(s.value(&k, START + 95 * SEC - 1).is_err());
}

#[test]
fn expire_drops_old_events_and_keeps_values_exact() {
    let mut s = simple_state(TWO, source_schema(), 0).unwrap();
    let events: Vec<Event> = (0..100)
        .map(|i| ev(1 + i % 3, i as i32, START + i * SEC))
        .collect();
    s.apply(&batch_of(&events)).unwrap();
    let k = [ScalarValue::Int64(Some(2))];
    let now = START + 100 * SEC;
    let before: Vec<_> = (0..30)
        .map(|d| s.value(&k, now + d * SEC).unwrap())
        .collect();
    let n = s.event_count();
    let dropped = s.expire(now);
    assert_eq!(s.event_count() as u64, n as u64 - dropped);
    // Events at START + 41 s ... START + 99 s remain (apply already pruned
    // those at or before its horizon, START + 39 s).
    assert_eq!(s.event_count(), 59);
    let after: Vec<_> = (0..30)
        .map(|d| s.value(&k, now + d * SEC).unwrap())
        .collect();
    assert_eq!(before, after);
    assert!(s.value(&k, now - 1).is_err());
    // Everything expired: the entities are gone and read as unknown ones.
    s.expire(now + 1_000 * SEC);
    assert_eq!(s.entity_count(), 0);
    assert_eq!(
        s.value(&k, now + 1_000 * SEC).unwrap(),
        vec![ScalarValue::Int64(Some(0)), ScalarValue::Int64(None)]
    );
}

#[test]
fn entity_state_round_trips_through_bytes() {
    let sql = "SELECT user_id, sum(price) FILTER (WHERE ts > now() - INTERVAL '1 minute') AS p, count(kind) FILTER (WHERE ts > now() - INTERVAL '1 minute') AS k, max(amount) FILTER (WHERE ts > now() - INTERVAL '30 seconds') AS a FROM raw.events GROUP BY user_id";
    let mut rng = Rng(5);
    let mut s = simple_state(sql, source_schema(), 0).unwrap();
    let mut events = random_events(&mut rng, 200, false);
    for e in &mut events {
        e.user_id = Some(1);
    }
    s.apply(&batch_of(&events)).unwrap();
    let k = vec![ScalarValue::Int64(Some(1))];
    let bytes = s.encode_entity(&k).unwrap();
    assert!(s.encode_entity(&[ScalarValue::Int64(Some(9))]).is_none());
    let mut t = simple_state(sql, source_schema(), 0).unwrap();
    t.decode_entity(k.clone(), &bytes).unwrap();
    assert_eq!(t.max_event_us(), s.max_event_us());
    let newest = s.max_event_us().unwrap();
    for d in 0..70 {
        let at = newest + d * SEC - 1;
        assert_eq!(
            s.value(&k, at).unwrap(),
            t.value(&k, at).unwrap(),
            "at +{d} s"
        );
    }
    // Damaged or foreign bytes are refused with the model named.
    let mut bad = bytes.clone();
    bad[3] = 9;
    assert!(t
        .decode_entity(k.clone(), &bad)
        .unwrap_err()
        .to_string()
        .contains("format version 9"));
    let cut = &bytes[..bytes.len() - 3];
    assert!(t
        .decode_entity(k.clone(), cut)
        .unwrap_err()
        .to_string()
        .contains("truncated"));
    let mut other = simple_state(TWO, source_schema(), 0).unwrap();
    let err = other
        .decode_entity(k.clone(), &bytes)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`m`") && err.contains("another definition"),
        "{err}"
    );
}

/// What a writer appends per batch (`take_changes`), concatenated over the
/// batches and in any order, decodes to the state the batches built.
#[test]
fn appended_changes_decode_to_the_same_values() {
    let sql = "SELECT user_id, sum(price) FILTER (WHERE ts > now() - INTERVAL '1 minute') AS p, count(*) FILTER (WHERE ts > now() - INTERVAL '10 seconds') AS n, min(amount) FILTER (WHERE ts > now() - INTERVAL '30 seconds') AS a FROM raw.events WHERE coalesce(kind, 'payment') <> 'refund' GROUP BY user_id";
    let mut rng = Rng(11);
    let mut s = simple_state(sql, source_schema(), 5 * SEC).unwrap();
    s.record_changes(true);
    let events = random_events(&mut rng, 600, false);
    let mut log: std::collections::HashMap<super::EntityKey, Vec<Vec<u8>>> = Default::default();
    for chunk in events.chunks(37) {
        s.apply(&batch_of(chunk)).unwrap();
        for (k, bytes) in s.take_changes() {
            log.entry(k).or_default().push(bytes);
        }
    }
    assert!(s.take_changes().is_empty());
    let newest = s.max_event_us().unwrap();
    let mut checked = 0;
    for (k, runs) in &log {
        // Appended in order, and the same runs in reverse order.
        for reverse in [false, true] {
            let mut bytes = Vec::new();
            let order: Vec<&Vec<u8>> = if reverse {
                runs.iter().rev().collect()
            } else {
                runs.iter().collect()
            };
            for r in order {
                bytes.extend_from_slice(r);
            }
            let mut t = s.empty_like().unwrap();
            t.decode_events(k, &bytes).unwrap();
            for d in 0..70 {
                let at = newest + d * SEC;
                if s.earliest_exact_us().is_some_and(|e| at < e) {
                    continue;
                }
                assert_eq!(
                    s.value_of(k, at).unwrap(),
                    t.value_of(k, at).unwrap(),
                    "{k:?} +{d} s"
                );
                checked += 1;
            }
        }
        // The whole entity as one run decodes the same.
        if let Some(whole) = s.entity_events(k) {
            let mut t = s.empty_like().unwrap();
            t.decode_events(k, &whole).unwrap();
            assert_eq!(
                s.value_of(k, newest).unwrap(),
                t.value_of(k, newest).unwrap()
            );
        }
    }
    assert!(checked > 100, "{checked}");
    // Keys given as values (of another integer type too) name the same
    // entities as the row bytes.
    for user in [1i64, 2, 3] {
        let k = s.key_of(&[ScalarValue::Int64(Some(user))]).unwrap();
        assert_eq!(
            k,
            s.key_of(&[ScalarValue::Int32(Some(user as i32))]).unwrap()
        );
        assert!(log.contains_key(&k), "user {user}");
        assert_eq!(
            s.value(&[ScalarValue::Int64(Some(user))], newest).unwrap(),
            s.value_of(&k, newest).unwrap()
        );
    }
    let mut t = s.empty_like().unwrap();
    let key = t.key_of(&[ScalarValue::Int64(Some(1))]).unwrap();
    let err = t.decode_events(&key, &[1, 2, 3]).unwrap_err().to_string();
    assert!(
        err.contains("truncated") && err.contains("restart `sluice stream`"),
        "{err}"
    );
}

#[test]
fn types_follow_datafusion_and_others_are_refused() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("d", DataType::Date32, true),
        Field::new("u", DataType::UInt32, true),
        Field::new("dec", DataType::Decimal128(10, 2), true),
        Field::new("s", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            true,
        ),
    ]));
    let sql = "SELECT user_id, min(d) FILTER (WHERE ts > now() - INTERVAL '1 minute') AS d, sum(u) FILTER (WHERE ts > now() - INTERVAL '1 minute') AS u, max(ts) FILTER (WHERE ts > now() - INTERVAL '1 minute') AS t, count(s) FILTER (WHERE ts > now() - INTERVAL '1 minute') AS c FROM raw.events GROUP BY user_id";
    let mut s = simple_state(sql, schema.clone(), 0).unwrap();
    let out = s.output_schema();
    let types: Vec<&DataType> = out.fields().iter().map(|f| f.data_type()).collect();
    assert_eq!(
        types,
        vec![
            &DataType::Int64,
            &DataType::Date32,
            &DataType::UInt64,
            &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            &DataType::Int64
        ]
    );
    // Nanosecond times: an event 1 ns after T is not in the window of T.
    let t = START;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 1])),
            Arc::new(Date32Array::from(vec![19_000, 18_000])),
            Arc::new(datafusion::arrow::array::UInt32Array::from(vec![
                4_000_000_000u32,
                4_000_000_000,
            ])),
            Arc::new(
                datafusion::arrow::array::Decimal128Array::from(vec![1, 2])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            Arc::new(StringArray::from(vec![Some("x"), None])),
            Arc::new(
                TimestampNanosecondArray::from(vec![t * 1000, t * 1000 + 1]).with_timezone("UTC"),
            ),
        ],
    )
    .unwrap();
    s.apply(&batch).unwrap();
    let k = [ScalarValue::Int64(Some(1))];
    assert_eq!(
        s.value(&k, t).unwrap(),
        vec![
            ScalarValue::Date32(Some(19_000)),
            ScalarValue::UInt64(Some(4_000_000_000)),
            ScalarValue::TimestampNanosecond(Some(t * 1000), Some("UTC".into())),
            ScalarValue::Int64(Some(1)),
        ]
    );
    assert_eq!(
        s.value(&k, t + 1).unwrap(),
        vec![
            ScalarValue::Date32(Some(18_000)),
            ScalarValue::UInt64(Some(8_000_000_000)),
            ScalarValue::TimestampNanosecond(Some(t * 1000 + 1), Some("UTC".into())),
            ScalarValue::Int64(Some(1)),
        ]
    );

    let refused = [
        ("sum(dec)", "decimals"),
        ("avg(s)", "avg over Utf8"),
        ("max(s)", "max() over Utf8"),
        ("sum(nope)", "nope"),
    ];
    for (agg, needle) in refused {
        let sql = format!("SELECT user_id, {agg} FILTER (WHERE ts > now() - INTERVAL '1 minute') AS x FROM raw.events GROUP BY user_id");
        let err = simple_state(&sql, schema.clone(), 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`m`") && err.contains(needle), "{agg}: {err}");
    }
    let bad_ts = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("ts", DataType::Int64, true),
    ]));
    let sql = "SELECT user_id, count(*) FILTER (WHERE ts > now() - INTERVAL '1 minute') AS x FROM raw.events GROUP BY user_id";
    let err = simple_state(sql, bad_ts, 0).unwrap_err().to_string();
    assert!(err.contains("must be a TIMESTAMP"), "{err}");
    let err = simple_state(sql, source_schema(), -1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("lateness"), "{err}");
}

#[test]
fn integer_sum_overflow_is_an_error() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
    ]));
    let sql = "SELECT user_id, sum(v) FILTER (WHERE ts > now() - INTERVAL '1 minute') AS total FROM raw.events GROUP BY user_id";
    let mut s = simple_state(sql, schema.clone(), 0).unwrap();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 1, 1])),
            Arc::new(Int64Array::from(vec![i64::MAX, 1, -2])),
            Arc::new(TimestampMicrosecondArray::from(vec![
                START,
                START + 1,
                START + 2,
            ])),
        ],
    )
    .unwrap();
    s.apply(&batch).unwrap();
    let k = [ScalarValue::Int64(Some(1))];
    // The exact sum fits at START + 2 (MAX - 1), not at START + 1.
    assert_eq!(
        s.value(&k, START + 2).unwrap(),
        vec![ScalarValue::Int64(Some(i64::MAX - 1))]
    );
    let err = s.value(&k, START + 1).unwrap_err().to_string();
    assert!(err.contains("does not fit BIGINT"), "{err}");
}

#[test]
fn batches_with_reordered_or_changed_columns() {
    let mut s = simple_state(TWO, source_schema(), 0).unwrap();
    let b = batch_of(&[ev(1, 5, START)]);
    let reordered = b.project(&[5, 4, 3, 2, 1, 0]).unwrap();
    s.apply(&reordered).unwrap();
    assert_eq!(
        s.value(&[ScalarValue::Int64(Some(1))], START).unwrap()[1],
        ScalarValue::Int64(Some(5))
    );
    let missing = b.project(&[0, 1, 2, 5]).unwrap();
    let err = s.apply(&missing).unwrap_err().to_string();
    assert!(err.contains("no column `amount`"), "{err}");
}

#[tokio::test]
async fn offline_sql_runs_as_the_model_sql_at_now() {
    // The model SQL run as a batch query equals the offline SQL at one label
    // instant after every event (T = now, no event in the future).
    let spec = StreamAggSpec::parse("m", TWO, &["user_id".to_string()], "ts").unwrap();
    let now = chrono::Utc::now().timestamp_micros();
    let events = vec![
        ev(1, 5, now - 5 * SEC),
        ev(1, 7, now - 30 * SEC),
        ev(2, 1, now - 120 * SEC),
    ];
    let ctx = SessionContext::new();
    ctx.catalog("datafusion")
        .unwrap()
        .register_schema("raw", Arc::new(MemorySchemaProvider::new()))
        .unwrap();
    ctx.register_table(
        "raw.events",
        Arc::new(MemTable::try_new(source_schema(), vec![vec![batch_of(&events)]]).unwrap()),
    )
    .unwrap();
    let batch = ctx
        .sql(&format!("{TWO} ORDER BY user_id"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let batch = concat_batches(&batch[0].schema(), &batch).unwrap();
    assert_eq!(batch.num_rows(), 2);
    let n = batch
        .column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    let s = batch
        .column(2)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!((n.value(0), s.value(0)), (1, 12));
    assert_eq!((n.value(1), s.is_null(1)), (0, true));
    // offline_sql at T = now gives the same rows.
    let labels = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(TimestampMicrosecondArray::from(vec![now, now])),
        ],
    )
    .unwrap();
    ctx.register_table(
        "labels",
        Arc::new(MemTable::try_new(labels.schema(), vec![vec![labels]]).unwrap()),
    )
    .unwrap();
    let off = ctx
        .sql(&offline_sql(
            &spec,
            "SELECT * FROM labels",
            "t",
            &["user_id", "t"],
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let off = concat_batches(&off[0].schema(), &off).unwrap();
    assert_eq!(off.num_columns(), 4, "label columns, then the features");
    assert_eq!(off.column(2), batch.column(1));
    assert_eq!(off.column(3), batch.column(2));
}

#[test]
fn extreme_times_are_refused_or_skipped_not_overflowed() {
    let mut s = simple_state(TWO, source_schema(), 0).unwrap();
    let stats = s
        .apply(&batch_of(&[
            ev(1, 5, i64::MIN),
            ev(1, 6, i64::MAX),
            ev(1, 7, START),
        ]))
        .unwrap();
    assert_eq!((stats.out_of_range, stats.applied), (2, 1));
    let k = [ScalarValue::Int64(Some(1))];
    for at in [i64::MIN, i64::MAX] {
        let err = s.value(&k, at).unwrap_err().to_string();
        assert!(err.contains("out of range"), "{err}");
    }
    assert_eq!(s.value(&k, START).unwrap()[1], ScalarValue::Int64(Some(7)));
    let err = simple_state(TWO, source_schema(), i64::MAX)
        .unwrap_err()
        .to_string();
    assert!(err.contains("allowed lateness"), "{err}");
}

/// The offline SQL through sluice's own engine (its parser, checked
/// arithmetic and `sum`, a Delta table as the source) gives the online
/// values.
#[tokio::test]
async fn offline_sql_through_the_sluice_engine_matches_online() {
    let wh = crate::warehouse::Warehouse::open("memory://stream_agg", &Default::default()).unwrap();
    let engine = crate::sql::Engine::new(wh, "main").await.unwrap();
    let mut rng = Rng(21);
    let mut rows = Vec::new();
    for _ in 0..60 {
        let sec = rng.range(0, 300);
        let micros = if rng.percent(30) {
            0
        } else {
            rng.range(0, 999_999)
        };
        rows.push(format!(
            "({}, {}, '{}', TIMESTAMP '2026-01-01 00:00:00' + INTERVAL '{sec} seconds' + INTERVAL '{micros} microseconds')",
            rng.range(1, 3),
            rng.range(-50, 500),
            if rng.percent(80) { "payment" } else { "refund" },
        ));
    }
    engine
        .query(&format!(
            "CREATE TABLE events AS SELECT * FROM (VALUES {}) t(user_id, amount, kind, ts)",
            rows.join(", ")
        ))
        .await
        .unwrap();
    let sql = "SELECT user_id,
        count(*) FILTER (WHERE ts > now() - INTERVAL '30 seconds') AS n_30s,
        sum(amount) FILTER (WHERE ts > now() - INTERVAL '2 minutes') AS amount_2m,
        avg(amount) FILTER (WHERE ts > now() - INTERVAL '45 seconds') AS avg_45s,
        max(ts) FILTER (WHERE ts > now() - INTERVAL '1 minute') AS last_1m
      FROM events WHERE kind = 'payment' GROUP BY user_id";
    let spec = StreamAggSpec::parse("m", sql, &["user_id".to_string()], "ts").unwrap();
    let source = engine.query("SELECT * FROM events").await.unwrap();
    // The events span 5 minutes: a lateness of 10 keeps them all.
    let options = StreamAggOptions {
        allowed_lateness_us: 600 * SEC,
    };
    let mut state = StreamAggState::new(spec.clone(), source[0].schema(), options).unwrap();
    for b in &source {
        state.apply(b).unwrap();
    }
    let base = engine
        .query("SELECT CAST(TIMESTAMP '2026-01-01 00:00:00' AS BIGINT) / 1000 AS us")
        .await
        .unwrap();
    let base = base[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    let mut labels = Vec::new();
    let mut expected = Vec::new();
    for i in 0..40 {
        let user = 1 + i % 4;
        let offset_us = rng.range(0, 330) * SEC
            + if rng.percent(50) {
                0
            } else {
                rng.range(0, 999_999)
            };
        labels.push(format!(
            "({i}, {user}, TIMESTAMP '2026-01-01 00:00:00' + INTERVAL '{offset_us} microseconds')"
        ));
        expected.push(
            state
                .value(&[ScalarValue::Int64(Some(user))], base + offset_us)
                .unwrap(),
        );
    }
    // DISTINCT: labels that come out of a hash aggregate in another order
    // each time they are read.
    let labels = format!(
        "SELECT DISTINCT * FROM (VALUES {}) l(label_id, user_id, t)",
        labels.join(", ")
    );
    let off = engine
        .query(&offline_sql(
            &spec,
            &labels,
            "t",
            &["label_id", "user_id", "t"],
        ))
        .await
        .unwrap();
    let off = concat_batches(&off[0].schema(), &off).unwrap();
    assert_eq!(off.num_rows(), 40);
    let busy = expected
        .iter()
        .filter(|v| v[0] != ScalarValue::Int64(Some(0)))
        .count();
    assert!(
        busy >= 10,
        "only {busy} labels have events in their 30 s window"
    );
    let first = off.num_columns() - spec.aggregates.len();
    for row in 0..off.num_rows() {
        let id = ScalarValue::try_from_array(off.column(0), row).unwrap();
        let ScalarValue::Int64(Some(id)) = id else {
            panic!("{id:?}")
        };
        for (i, (a, want)) in spec
            .aggregates
            .iter()
            .zip(&expected[id as usize])
            .enumerate()
        {
            let got = ScalarValue::try_from_array(off.column(first + i), row).unwrap();
            assert_eq!(&got, want, "label {id}, {}", a.alias);
        }
    }
}
