//! State the server keeps between a client's calls, named by a handle it gave
//! the client: a finished statement's result waiting for DoGet, a query
//! GetFlightInfo planned for the DoGet that follows, a prepared statement.
//!
//! Clients may never come back for what they were given (a DoGet that never
//! comes, a prepared statement never closed), so every kind lives in one
//! [`HandleStore`], which is
//! - expiring: an entry unused for the store's time to live is gone;
//! - bounded: when full, the least recently used entry makes room;
//! - owned: only the caller that made an entry may use or remove it; to
//!   anyone else its handle is as unknown as a made-up one.

use super::auth::Principal;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Who may use an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Owner {
    user: String,
    /// The session (bearer token), or `None`: any session of the user.
    session: Option<String>,
}

impl Owner {
    /// The caller's user, in the caller's session only.
    pub(super) fn session(p: &Principal) -> Self {
        Owner {
            user: p.user.clone(),
            session: p.token.clone(),
        }
    }

    /// The caller's user, in any of the user's sessions.
    pub(super) fn user(p: &Principal) -> Self {
        Owner {
            user: p.user.clone(),
            session: None,
        }
    }
}

struct Entry<V> {
    value: V,
    owner: Owner,
    last_used: Instant,
}

/// Entries of one kind, each under a random handle (see the module docs).
pub(super) struct HandleStore<V> {
    entries: Mutex<Entries<V>>,
    ttl: Duration,
    capacity: usize,
}

struct Entries<V> {
    map: HashMap<String, Entry<V>>,
    /// When expired entries are next swept out (they are unreachable before:
    /// every access checks the time).
    next_sweep: Instant,
}

/// How often expired entries are swept out at most (and always when full).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl<V> HandleStore<V> {
    /// A store whose entries live `ttl` after their last use, at most
    /// `capacity` of them (at least one).
    pub(super) fn new(ttl: Duration, capacity: usize) -> Self {
        HandleStore {
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                next_sweep: Instant::now(),
            }),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// Keeps `value` for `owner` and returns its new handle.
    pub(super) fn insert(&self, owner: Owner, value: V) -> String {
        self.insert_at(owner, value, Instant::now())
    }

    /// The value under `handle`, removed: a second take finds nothing.
    pub(super) fn take(&self, handle: &str, owner: &Owner) -> Option<V> {
        self.take_at(handle, owner, Instant::now())
    }

    /// `f` of the value under `handle`, which counts as a use (its time to
    /// live starts again).
    pub(super) fn with<R>(
        &self,
        handle: &str,
        owner: &Owner,
        f: impl FnOnce(&mut V) -> R,
    ) -> Option<R> {
        self.with_at(handle, owner, f, Instant::now())
    }

    /// Removes the value under `handle`; whether there was one.
    pub(super) fn remove(&self, handle: &str, owner: &Owner) -> bool {
        self.take(handle, owner).is_some()
    }

    fn lock(&self) -> MutexGuard<'_, Entries<V>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert_at(&self, owner: Owner, value: V, now: Instant) -> String {
        let handle = uuid::Uuid::new_v4().to_string();
        let mut entries = self.lock();
        let full = entries.map.len() >= self.capacity;
        if full || now >= entries.next_sweep {
            let ttl = self.ttl;
            entries
                .map
                .retain(|_, e| now.saturating_duration_since(e.last_used) < ttl);
            entries.next_sweep = now + SWEEP_EVERY;
        }
        while entries.map.len() >= self.capacity {
            let oldest = entries
                .map
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => entries.map.remove(&k),
                None => break,
            };
        }
        entries.map.insert(
            handle.clone(),
            Entry {
                value,
                owner,
                last_used: now,
            },
        );
        handle
    }

    /// The live entry under `handle` if `owner` owns it; an expired one is
    /// removed on the way.
    fn live<'a>(
        &self,
        entries: &'a mut Entries<V>,
        handle: &str,
        owner: &Owner,
        now: Instant,
    ) -> Option<&'a mut Entry<V>> {
        let expired = entries
            .map
            .get(handle)
            .is_some_and(|e| now.saturating_duration_since(e.last_used) >= self.ttl);
        if expired {
            entries.map.remove(handle);
            return None;
        }
        entries.map.get_mut(handle).filter(|e| &e.owner == owner)
    }

    fn take_at(&self, handle: &str, owner: &Owner, now: Instant) -> Option<V> {
        let mut entries = self.lock();
        self.live(&mut entries, handle, owner, now)?;
        entries.map.remove(handle).map(|e| e.value)
    }

    fn with_at<R>(
        &self,
        handle: &str,
        owner: &Owner,
        f: impl FnOnce(&mut V) -> R,
        now: Instant,
    ) -> Option<R> {
        let mut entries = self.lock();
        let entry = self.live(&mut entries, handle, owner, now)?;
        entry.last_used = now;
        Some(f(&mut entry.value))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::auth::Role;

    fn principal(user: &str, token: Option<&str>) -> Principal {
        Principal {
            user: user.into(),
            role: Role::ReadWrite,
            token: token.map(str::to_string),
        }
    }

    fn ann() -> Owner {
        Owner::session(&principal("ann", Some("t1")))
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn take_once() {
        let store = HandleStore::new(MINUTE, 10);
        let h = store.insert(ann(), 7);
        assert_eq!(store.take(&h, &ann()), Some(7));
        assert_eq!(store.take(&h, &ann()), None);
        assert_eq!(store.take("made-up", &ann()), None);
        assert!(!store.remove(&h, &ann()));
    }

    #[test]
    fn entries_expire_after_their_last_use() {
        let store = HandleStore::new(MINUTE, 10);
        let t0 = Instant::now();
        let h = store.insert_at(ann(), 1, t0);
        // Each use starts the time to live again.
        let half = t0 + MINUTE / 2;
        assert_eq!(store.with_at(&h, &ann(), |v| *v, half), Some(1));
        assert_eq!(
            store.with_at(&h, &ann(), |v| *v, half + MINUTE / 2),
            Some(1)
        );
        assert_eq!(store.with_at(&h, &ann(), |v| *v, half + MINUTE * 2), None);
        assert_eq!(store.len(), 0, "an expired entry found is removed");
        let h = store.insert_at(ann(), 2, t0);
        assert_eq!(store.take_at(&h, &ann(), t0 + MINUTE), None);
    }

    #[test]
    fn inserting_sweeps_expired_entries() {
        let store = HandleStore::new(MINUTE, 100);
        let t0 = Instant::now();
        for i in 0..10 {
            store.insert_at(ann(), i, t0);
        }
        let later = t0 + MINUTE + SWEEP_EVERY;
        let h = store.insert_at(ann(), 99, later);
        assert_eq!(store.len(), 1);
        assert_eq!(store.take_at(&h, &ann(), later), Some(99));
    }

    #[test]
    fn full_store_drops_the_least_recently_used() {
        let store = HandleStore::new(MINUTE, 3);
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let a = store.insert_at(ann(), "a", t0);
        let b = store.insert_at(ann(), "b", t0 + s);
        let c = store.insert_at(ann(), "c", t0 + 2 * s);
        // `a` is used again, so `b` is now the least recently used.
        assert_eq!(store.with_at(&a, &ann(), |v| *v, t0 + 3 * s), Some("a"));
        let d = store.insert_at(ann(), "d", t0 + 4 * s);
        assert_eq!(store.len(), 3);
        assert_eq!(store.take_at(&b, &ann(), t0 + 5 * s), None);
        for (h, v) in [(a, "a"), (c, "c"), (d, "d")] {
            assert_eq!(store.take_at(&h, &ann(), t0 + 5 * s), Some(v));
        }
        // Never more than the capacity, however many are inserted.
        for i in 0..50 {
            store.insert_at(ann(), "x", t0 + 6 * s + Duration::from_millis(i));
            assert!(store.len() <= 3);
        }
    }

    #[test]
    fn owners_are_isolated() {
        let store = HandleStore::new(MINUTE, 10);
        let h = store.insert(ann(), 1);
        let bob = Owner::session(&principal("bob", Some("t1")));
        let ann_elsewhere = Owner::session(&principal("ann", Some("t2")));
        for other in [&bob, &ann_elsewhere] {
            assert_eq!(store.with(&h, other, |v| *v), None);
            assert_eq!(store.take(&h, other), None);
            assert!(!store.remove(&h, other));
        }
        // Another caller's attempts leave the entry to its owner.
        assert_eq!(store.take(&h, &ann()), Some(1));

        // A user-wide owner: any session of the same user, no other user.
        let any_session = |t| Owner::user(&principal("ann", t));
        let h = store.insert(any_session(Some("t1")), 2);
        assert_eq!(store.with(&h, &any_session(Some("t2")), |v| *v), Some(2));
        assert_eq!(store.with(&h, &any_session(None), |v| *v), Some(2));
        assert_eq!(
            store.with(&h, &Owner::user(&principal("bob", None)), |v| *v),
            None
        );
        assert!(store.remove(&h, &any_session(None)));
    }
}
