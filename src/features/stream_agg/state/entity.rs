//! One entity's online state: its events by time, and tiles of partial
//! aggregates over them (see the parent modules for why and what it costs).

use std::collections::{BTreeMap, VecDeque};

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

/// One entity's events and tiles. Events are kept flat, in time order
/// (equal times in arrival order): their times, and `channels` values per
/// event in one queue, so an event costs its bytes and no allocation of its
/// own, appending in time order is a push, and pruning pops from the front.
#[derive(Debug, Default)]
pub(super) struct EntityState {
    /// Event times (µs), ascending.
    pub(super) times: VecDeque<i64>,
    /// `channels` values per event, in the order of `times`.
    vals: VecDeque<Val>,
    channels: usize,
    /// Per tile width: tile index `k` (covering `(k*w, (k+1)*w]`) → partials.
    /// Empty when the state keeps no tiles.
    pub(super) tiles: Vec<BTreeMap<i64, Tile>>,
}

impl EntityState {
    pub(super) fn new(channels: usize, tile_sets: usize) -> Self {
        EntityState {
            times: VecDeque::new(),
            vals: VecDeque::new(),
            channels,
            tiles: (0..tile_sets).map(|_| BTreeMap::new()).collect(),
        }
    }

    /// Events held.
    pub(super) fn len(&self) -> usize {
        self.times.len()
    }

    /// The newest event time.
    pub(super) fn newest(&self) -> Option<i64> {
        self.times.back().copied()
    }

    /// The oldest event time.
    pub(super) fn oldest(&self) -> Option<i64> {
        self.times.front().copied()
    }

    /// The channel values of event `i`.
    pub(super) fn vals(&self, i: usize) -> impl Iterator<Item = Val> + '_ {
        self.vals
            .range(i * self.channels..(i + 1) * self.channels)
            .copied()
    }

    /// The value of channel `c` of event `i`.
    pub(super) fn val(&self, i: usize, c: usize) -> Val {
        self.vals[i * self.channels + c]
    }

    /// The indexes of the events in `(from, to]`.
    pub(super) fn between(&self, from: i64, to: i64) -> std::ops::Range<usize> {
        let a = self.times.partition_point(|&t| t <= from);
        let b = self.times.partition_point(|&t| t <= to);
        a..b.max(a)
    }

    /// Adds an event (`vals`: one value per channel). `widths` are the tile
    /// widths (empty without tiles).
    pub(super) fn insert(&mut self, ts: i64, vals: &[Val], widths: &[i64]) {
        debug_assert_eq!(vals.len(), self.channels);
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
        if self.times.back().is_none_or(|&t| t <= ts) {
            self.times.push_back(ts);
            self.vals.extend(vals.iter().copied());
            return;
        }
        let at = self.times.partition_point(|&t| t <= ts);
        self.times.insert(at, ts);
        for (j, v) in vals.iter().enumerate() {
            self.vals.insert(at * self.channels + j, *v);
        }
    }

    /// Drops the events at or before `cut`, and the tiles that lie wholly at
    /// or before it. Returns the number of events dropped and the newest
    /// time among them.
    pub(super) fn prune(&mut self, cut: i64, widths: &[i64]) -> (u64, Option<i64>) {
        if self.times.front().is_none_or(|&t| t > cut) {
            return (0, None);
        }
        let n = self.times.partition_point(|&t| t <= cut);
        let newest = self.times.get(n - 1).copied();
        self.times.drain(..n);
        self.vals.drain(..n * self.channels);
        for (set, &w) in self.tiles.iter_mut().zip(widths) {
            // Tile k ends at (k+1)*w <= cut exactly when k < floor(cut / w).
            let kept = set.split_off(&cut.div_euclid(w));
            *set = kept;
        }
        if self.times.len() * 4 < self.times.capacity() && self.times.capacity() > 64 {
            self.times.shrink_to(self.times.len() * 2);
            self.vals.shrink_to(self.vals.len() * 2);
        }
        (n as u64, newest)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.times.is_empty()
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
