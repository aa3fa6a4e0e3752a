//! The right rows the stream strategy keeps: a right batch is kept (whole,
//! no copy) when one of its rows becomes some left entry's best, and the kept
//! rows are compacted down to the ones entries still point to once they pass
//! the live ones by three times the entries. Memory is then bounded by the
//! left side, however large the right side.

use super::left_index::{Entry, NONE};
use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::compute::interleave;
use datafusion::common::Result;

/// Right batches kept because one of their rows is (or was) a target's best,
/// and the rows compacted out of them: the right columns the output takes,
/// then the tie-break values that are not plain right columns. Row ids count
/// through the chunks.
pub(super) struct Kept {
    pub chunks: Vec<Vec<ArrayRef>>,
    starts: Vec<u32>,
    pub rows: u32,
    /// Compact when `rows` reaches this.
    pub compact_at: u32,
    pub bytes: usize,
    /// Compactions so far and their time (for the debug log).
    pub compactions: usize,
    pub compacting: std::time::Duration,
}

impl Kept {
    /// Nothing kept yet, for `entries` targets.
    pub fn new(entries: usize) -> Self {
        Kept {
            chunks: Vec::new(),
            starts: Vec::new(),
            rows: 0,
            compact_at: Self::next_compaction(0, entries),
            bytes: 0,
            compactions: 0,
            compacting: std::time::Duration::ZERO,
        }
    }

    pub fn locate(&self, id: u32) -> (usize, usize) {
        let c = self.starts.partition_point(|&s| s <= id) - 1;
        (c, (id - self.starts[c]) as usize)
    }

    pub fn push(&mut self, columns: Vec<ArrayRef>, rows: u32) {
        self.bytes += columns
            .iter()
            .map(|c| c.get_array_memory_size())
            .sum::<usize>();
        self.starts.push(self.rows);
        self.chunks.push(columns);
        self.rows += rows;
    }

    /// Keeps only the rows the entries point to (in one chunk, in their id
    /// order) and renumbers them. The referenced ids are marked in a bitmap
    /// (an eighth of a byte per kept row, so it stays in cache); the rows are
    /// gathered in id order, chunk after chunk, and an entry's new id is the
    /// number of marked ids before its old one.
    pub fn compact(&mut self, entries: &mut [Entry]) -> Result<()> {
        let started = std::time::Instant::now();
        let mut marked = vec![0u64; (self.rows as usize).div_ceil(64)];
        for e in entries.iter().filter(|e| e.best != NONE) {
            marked[(e.best / 64) as usize] |= 1 << (e.best % 64);
        }
        // Per bitmap word, the marked ids before it.
        let mut before = Vec::with_capacity(marked.len());
        let mut gathered: Vec<(usize, usize)> = Vec::new();
        let mut chunk = 0usize;
        for (w, &word) in marked.iter().enumerate() {
            before.push(gathered.len() as u32);
            let mut bits = word;
            while bits != 0 {
                let id = (w * 64) as u32 + bits.trailing_zeros();
                bits &= bits - 1;
                while self.starts.get(chunk + 1).is_some_and(|&s| s <= id) {
                    chunk += 1;
                }
                gathered.push((chunk, (id - self.starts[chunk]) as usize));
            }
        }
        for e in entries.iter_mut().filter(|e| e.best != NONE) {
            let (w, b) = ((e.best / 64) as usize, e.best % 64);
            e.best = before[w] + (marked[w] & ((1u64 << b) - 1)).count_ones();
        }
        let width = self.chunks.first().map_or(0, |c| c.len());
        let mut columns = Vec::with_capacity(width);
        for c in 0..width {
            let sources: Vec<&dyn Array> = self.chunks.iter().map(|ch| ch[c].as_ref()).collect();
            columns.push(interleave(&sources, &gathered)?);
        }
        let live = gathered.len() as u32;
        self.chunks.clear();
        self.starts.clear();
        self.rows = 0;
        self.bytes = 0;
        if width > 0 && live > 0 {
            self.push(columns, live);
        }
        self.compact_at = Self::next_compaction(live, entries.len());
        self.compactions += 1;
        self.compacting += started.elapsed();
        Ok(())
    }

    /// When to compact next, with `live` rows kept and `entries` targets:
    /// after `3 * entries` more rows (and at least 64 Ki). A compaction costs
    /// about `entries + live <= 2 * entries`, so it costs at most 2/3 of a
    /// gather per kept row, and the kept rows stay under `4 * entries + 64 Ki`.
    fn next_compaction(live: u32, entries: usize) -> u32 {
        let entries = u32::try_from(entries).unwrap_or(u32::MAX);
        live.saturating_add(entries.saturating_mul(3))
            .saturating_add(1 << 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::Int64Type;
    use std::sync::Arc;

    fn ints(v: &[i64]) -> ArrayRef {
        Arc::new(Int64Array::from(v.to_vec()))
    }

    fn entry(best: u32) -> Entry {
        Entry {
            time: 0,
            best_time: 0,
            best,
        }
    }

    /// Many chunks, ids across bitmap words, rows referenced once, twice or
    /// not at all: every entry still sees its row's value, the kept rows are
    /// the distinct referenced ones in id order.
    #[test]
    fn compaction_across_chunks_and_bitmap_words() {
        let mut kept = Kept::new(0);
        // Chunk sizes 1..=70 (some cross a 64-id word, some sit inside one);
        // row id i holds the value 1000 + i.
        let mut next = 0i64;
        for size in [1usize, 63, 2, 70, 5, 64, 1, 33, 65] {
            let values: Vec<i64> = (next..next + size as i64).map(|i| 1000 + i).collect();
            kept.push(vec![ints(&values)], size as u32);
            next += size as i64;
        }
        let rows = kept.rows;
        // A deterministic scatter of references, with repeats and NONEs.
        let mut entries: Vec<Entry> = (0..400u32)
            .map(|i| match i % 7 {
                0 => entry(NONE),
                _ => entry((i * 37 + i / 3) % rows),
            })
            .collect();
        let before: Vec<u32> = entries.iter().map(|e| e.best).collect();
        kept.compact(&mut entries).unwrap();
        let mut distinct: Vec<u32> = before.iter().copied().filter(|&b| b != NONE).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(kept.rows as usize, distinct.len());
        let values = kept.chunks[0][0].as_primitive::<Int64Type>();
        let expected: Vec<i64> = distinct.iter().map(|&id| 1000 + i64::from(id)).collect();
        assert_eq!(values.values().to_vec(), expected, "kept in id order");
        for (e, &old) in entries.iter().zip(&before) {
            if old == NONE {
                assert_eq!(e.best, NONE);
            } else {
                assert_eq!(values.value(e.best as usize), 1000 + i64::from(old));
            }
        }
    }

    #[test]
    fn compaction_keeps_only_referenced_rows_and_renumbers() {
        let mut kept = Kept::new(0);
        kept.push(vec![ints(&[10, 11, 12])], 3);
        kept.push(vec![ints(&[20, 21])], 2);
        assert_eq!(kept.locate(3), (1, 0));
        // Row 4 (21) is referenced twice, row 1 (11) once, the others not at all.
        let mut entries = vec![entry(4), entry(NONE), entry(1), entry(4)];
        kept.compact(&mut entries).unwrap();
        assert_eq!(kept.rows, 2);
        assert_eq!(kept.chunks.len(), 1);
        let values = kept.chunks[0][0].as_primitive::<Int64Type>();
        let got: Vec<Option<i64>> = entries
            .iter()
            .map(|e| (e.best != NONE).then(|| values.value(e.best as usize)))
            .collect();
        assert_eq!(got, vec![Some(21), None, Some(11), Some(21)]);
        assert_eq!(kept.compact_at, 2 + 3 * 4 + (1 << 16));
        // Nothing referenced: no rows kept.
        let mut none = vec![entry(NONE)];
        kept.compact(&mut none).unwrap();
        assert_eq!((kept.rows, kept.chunks.len()), (0, 0));
    }
}
