//! One entity's state as bytes (format version 1, little-endian):
//! `b"SFA"`, version `1u8`, the layout fingerprint (`u64`, FNV-1a of the
//! channel domains, so a state saved for another definition is refused),
//! the channel count (`u16`), the event count (`u64`), then per event its
//! time in µs (`i64`) and per channel a tag (`0` NULL, `1` integer, `2`
//! float) with 8 bytes of value unless NULL. Tiles are not stored: they
//! are rebuilt from the events (tiles straddling the horizon then lack
//! dropped events, which no exact lookup reads).

use super::*;

const MAGIC: &[u8; 3] = b"SFA";
const VERSION: u8 = 1;

impl StreamAggState {
    fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |b: u8| {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        };
        for c in &self.channels {
            eat(match c.domain {
                Domain::Int => 1,
                Domain::Float => 2,
                Domain::CountOnly => 3,
            });
        }
        eat(0xff);
        h
    }

    /// The state of entity `key` as bytes, or `None` if the state holds
    /// no event of it.
    pub fn encode_entity(&self, key: &[ScalarValue]) -> Option<Vec<u8>> {
        let key = self.key_of(key).ok()?;
        let e = self.entities.get(&key)?;
        let n = e.len();
        let mut out = Vec::with_capacity(24 + n * (8 + 9 * self.channels.len()));
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.fingerprint().to_le_bytes());
        out.extend_from_slice(&(self.channels.len() as u16).to_le_bytes());
        out.extend_from_slice(&(n as u64).to_le_bytes());
        encode_entity_events(&mut out, e);
        Some(out)
    }

    /// Replaces the state of entity `key` with `bytes` from
    /// [`encode_entity`](Self::encode_entity). Events at or before the
    /// current horizon are dropped; the newest event time advances to
    /// the newest decoded event.
    pub fn decode_entity(&mut self, key: Vec<ScalarValue>, bytes: &[u8]) -> Result<()> {
        let bad = |m: &str| {
            model_error(
                &self.spec.model,
                format!("the stored online state of entity {key:?} cannot be read: {m}; rebuild it from the source table"),
            )
        };
        if key.len() != self.entity_idx.len() {
            return Err(bad("the key does not have one value per entity"));
        }
        let row = self.key_of(&key)?;
        let mut r = Reader { bytes, at: 0 };
        if r.take(3) != Some(MAGIC.as_slice()) {
            return Err(bad("not a stream feature view state"));
        }
        match r.u8() {
            Some(VERSION) => {}
            Some(v) => {
                return Err(bad(&format!(
                    "format version {v}, this sluice reads {VERSION}"
                )))
            }
            None => return Err(bad("truncated")),
        }
        if r.u64() != Some(self.fingerprint()) {
            return Err(bad(
                "it was saved for another definition of the feature view",
            ));
        }
        let channels = r.u16().ok_or_else(|| bad("truncated"))? as usize;
        if channels != self.channels.len() {
            return Err(bad(
                "it was saved for another definition of the feature view",
            ));
        }
        let n = r.u64().ok_or_else(|| bad("truncated"))?;
        let events = self.read_events(&mut r, Some(n)).map_err(bad)?;
        if r.at != bytes.len() {
            return Err(bad("trailing bytes"));
        }
        self.install_entity(row, events);
        Ok(())
    }

    /// Entity `key`'s events as [`encode_event`] records, without the header
    /// (`None` when the state holds no event of it). Records concatenate:
    /// the bytes of two runs are the run of both.
    pub fn entity_events(&self, key: &[u8]) -> Option<Vec<u8>> {
        let e = self.entities.get(key)?;
        let mut out = Vec::with_capacity(e.len() * (8 + 9 * self.channels.len()));
        encode_entity_events(&mut out, e);
        Some(out)
    }

    /// Replaces the state of entity `key` with the events of `bytes`, records
    /// of [`entity_events`](Self::entity_events) and of the changes
    /// [`take_changes`](Self::take_changes) gives, in any order and
    /// concatenated. They carry no fingerprint: the caller knows they were
    /// written for this definition.
    pub fn decode_events(&mut self, key: &[u8], bytes: &[u8]) -> Result<()> {
        let bad = |m: &str| {
            model_error(
                &self.spec.model,
                format!("the stored online events of an entity cannot be read: {m}; restart `sluice stream` to rebuild them from the source table"),
            )
        };
        let mut r = Reader { bytes, at: 0 };
        let events = self.read_events(&mut r, None).map_err(bad)?;
        self.install_entity(key.into(), events);
        Ok(())
    }

    /// `n` events (or all up to the end) from `r`.
    fn read_events(
        &self,
        r: &mut Reader<'_>,
        n: Option<u64>,
    ) -> std::result::Result<Events, &'static str> {
        let mut events = Vec::new();
        let mut read = 0u64;
        loop {
            match n {
                Some(n) if read == n => break,
                None if r.at == r.bytes.len() => break,
                _ => {}
            }
            read += 1;
            let ts = r.u64().ok_or("truncated")? as i64;
            if !TIME_RANGE_US.contains(&ts) {
                return Err("an event time is out of range");
            }
            let mut vals = Vec::with_capacity(self.channels.len());
            for c in &self.channels {
                let v = match (r.u8(), c.domain) {
                    (Some(0), _) => Val::Null,
                    (Some(1), Domain::Int | Domain::CountOnly) => {
                        Val::I(r.u64().ok_or("truncated")? as i64)
                    }
                    (Some(2), Domain::Float) => Val::F(f64::from_bits(r.u64().ok_or("truncated")?)),
                    (None, _) => return Err("truncated"),
                    _ => return Err("a value has the wrong type"),
                };
                vals.push(v);
            }
            events.push((ts, vals.into_boxed_slice()));
        }
        Ok(events)
    }

    /// Makes `events` the state of entity `key`: events at or before the
    /// horizon are dropped; the newest event time advances to the newest.
    fn install_entity(&mut self, key: EntityKey, events: Events) {
        if let Some(newest) = events.iter().map(|(t, _)| *t).max() {
            self.max_event_us = Some(self.max_event_us.map_or(newest, |m| m.max(newest)));
        }
        let horizon = self.horizon_us();
        let mut entity = self.new_entity();
        let widths: &[i64] = if self.tiles { &self.tile_widths } else { &[] };
        let mut late_max = None;
        for (ts, vals) in events {
            if horizon.is_none_or(|h| ts > h) {
                entity.insert(ts, &vals, widths);
            } else {
                late_max = late_max.max(Some(ts));
            }
        }
        self.dropped(late_max);
        if entity.is_empty() {
            self.entities.remove(&key);
        } else {
            self.entities.insert(key, entity);
        }
    }
}

/// Every event of `e`, as [`encode_event`] records.
fn encode_entity_events(out: &mut Vec<u8>, e: &EntityState) {
    for i in 0..e.len() {
        encode_event(out, e.times[i], e.vals(i));
    }
}

/// One event as bytes: its time (µs, `i64`), then per channel a tag (`0`
/// NULL, `1` integer, `2` float) with 8 bytes of value unless NULL.
pub(super) fn encode_event(
    out: &mut Vec<u8>,
    ts: i64,
    vals: impl IntoIterator<Item = impl std::borrow::Borrow<Val>>,
) {
    out.extend_from_slice(&ts.to_le_bytes());
    for v in vals {
        let v: Val = *v.borrow();
        match v {
            Val::Null => out.push(0),
            Val::I(x) => {
                out.push(1);
                out.extend_from_slice(&x.to_le_bytes());
            }
            Val::F(x) => {
                out.push(2);
                out.extend_from_slice(&x.to_bits().to_le_bytes());
            }
        }
    }
}

/// Decoded events: time and channel values.
type Events = Vec<(i64, Box<[Val]>)>;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2)?.try_into().ok().map(u16::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
}
