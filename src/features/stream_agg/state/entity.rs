//! One entity's online state: its events by time, and tiles of partial
//! aggregates over them (see the parent modules for why and what it costs).

use std::collections::BTreeMap;

/// One value of an aggregate input, in its domain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Val {
    Null,
    /// Integers, timestamps and dates (as their `i64` value).
    I(i64),
    F(f64),
}

/// Partial aggregate of one channel over a set of events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Partial {
    /// Non-NULL values.
    pub(super) count: i64,
    pub(super) isum: i128,
    pub(super) fsum: f64,
    pub(super) min: Val,
    pub(super) max: Val,
}

impl Default for Partial {
    fn default() -> Self {
        Partial {
            count: 0,
            isum: 0,
            fsum: 0.0,
            min: Val::Null,
            max: Val::Null,
        }
    }
}

/// `a < b` in the order DataFusion's min/max use (floats: total order).
fn less(a: Val, b: Val) -> bool {
    match (a, b) {
        (Val::I(x), Val::I(y)) => x < y,
        (Val::F(x), Val::F(y)) => x.total_cmp(&y).is_lt(),
        _ => false,
    }
}

impl Partial {
    pub(super) fn add(&mut self, v: Val) {
        match v {
            Val::Null => return,
            Val::I(x) => self.isum += i128::from(x),
            Val::F(x) => self.fsum += x,
        }
        self.count += 1;
        if self.min == Val::Null || less(v, self.min) {
            self.min = v;
        }
        if self.max == Val::Null || less(self.max, v) {
            self.max = v;
        }
    }

    pub(super) fn merge(&mut self, o: &Partial) {
        if o.count == 0 {
            return;
        }
        self.count += o.count;
        self.isum += o.isum;
        self.fsum += o.fsum;
        if self.min == Val::Null || less(o.min, self.min) {
            self.min = o.min;
        }
        if self.max == Val::Null || less(self.max, o.max) {
            self.max = o.max;
        }
    }
}

/// Partial aggregates of the events of one tile.
#[derive(Debug, Clone)]
pub(super) struct Tile {
    pub(super) rows: i64,
    pub(super) channels: Vec<Partial>,
}

/// One entity's events and tiles.
#[derive(Debug, Default)]
pub(super) struct EntityState {
    /// Event time (µs) → the channel values of each event at that time.
    pub(super) events: BTreeMap<i64, Vec<Box<[Val]>>>,
    /// Per tile width: tile index `k` (covering `(k*w, (k+1)*w]`) → partials.
    pub(super) tiles: Vec<BTreeMap<i64, Tile>>,
}

impl EntityState {
    pub(super) fn new(tile_sets: usize) -> Self {
        EntityState {
            events: BTreeMap::new(),
            tiles: (0..tile_sets).map(|_| BTreeMap::new()).collect(),
        }
    }

    pub(super) fn insert(&mut self, ts: i64, vals: Box<[Val]>, widths: &[i64]) {
        for (set, &w) in self.tiles.iter_mut().zip(widths) {
            let tile = set.entry(tile_of(ts, w)).or_insert_with(|| Tile {
                rows: 0,
                channels: vec![Partial::default(); vals.len()],
            });
            tile.rows += 1;
            for (p, v) in tile.channels.iter_mut().zip(vals.iter()) {
                p.add(*v);
            }
        }
        self.events.entry(ts).or_default().push(vals);
    }

    /// Drops the events at or before `cut`, and the tiles that lie wholly at
    /// or before it. Returns the number of events dropped and the newest
    /// time among them.
    pub(super) fn prune(&mut self, cut: i64, widths: &[i64]) -> (u64, Option<i64>) {
        let Some((&first, _)) = self.events.first_key_value() else {
            return (0, None);
        };
        if first > cut {
            return (0, None);
        }
        let kept = self.events.split_off(&cut.saturating_add(1));
        let dropped = std::mem::replace(&mut self.events, kept);
        for (set, &w) in self.tiles.iter_mut().zip(widths) {
            // Tile k ends at (k+1)*w <= cut exactly when k < floor(cut / w).
            let kept = set.split_off(&cut.div_euclid(w));
            *set = kept;
        }
        let newest = dropped.last_key_value().map(|(&t, _)| t);
        (dropped.values().map(|v| v.len() as u64).sum(), newest)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// The tile `k` of width `w` holding time `ts`: `k*w < ts <= (k+1)*w`.
fn tile_of(ts: i64, w: i64) -> i64 {
    (ts - 1).div_euclid(w)
}

pub(super) fn ceil_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
}

/// The tile width for a window: a sixtieth of it, rounded to whole seconds,
/// at least one second (so a lookup reads about 60 tiles).
pub(crate) fn tile_width_us(window_us: i64) -> i64 {
    let sixtieth = window_us / 60;
    let seconds = (sixtieth + 500_000) / 1_000_000;
    seconds.max(1) * 1_000_000
}
