//! One provider's cache: a lock-free front map that answers reads, kept in
//! step with a bounded moka index that decides what is evicted.
//!
//! # Why two maps
//!
//! A moka lookup records every read (a channel send, drained by its
//! housekeeping) and clones through its own entry wrappers: about 240 ns, more
//! than the whole hot-path budget, and several shared cache lines written per
//! read under contention. Reads therefore go to a `papaya` map (lock-free,
//! readers write no shared memory), and moka is kept as the *index*: it holds
//! the same values, bounds their number and picks the least recently used to
//! evict.
//!
//! # Keeping them in step
//!
//! - Every write (publish, invalidate) runs inside moka's per-key
//!   `and_compute_with`, which serialises writes to one key: the front map is
//!   changed first, then moka. So whatever moka holds for a key, the front map
//!   holds the same value.
//! - Moka's eviction listener removes the evicted value from the front map,
//!   **only if it is still that value** (pointer equality), so a late
//!   notification for a replaced value never drops its successor. A value is
//!   in the front map before moka can evict it, so no evicted value is left
//!   behind: the front map is bounded by moka's bound.
//! - Readers tell moka about their use once per
//!   [`TOUCH_EVERY`](super::credential::TOUCH_EVERY) per entry
//!   (one atomic load per read, one moka lookup per second), so the least
//!   recently *used* entries are the ones evicted.
//!
//! All operations are synchronous (moka's `sync::Cache`): no lock is held
//! across an await, and a cancelled caller can never leave the two maps half
//! updated.

use std::sync::Arc;

use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;

use super::credential::{Failure, TokenEntry, TokenId};

/// A cache value: a token or a failure being backed off.
#[derive(Clone)]
pub(crate) enum Slot {
    Token(Arc<TokenEntry>),
    Failed(Arc<Failure>),
}

impl Slot {
    /// The very same value (not merely equal).
    pub(crate) fn same(&self, other: &Slot) -> bool {
        match (self, other) {
            (Slot::Token(a), Slot::Token(b)) => Arc::ptr_eq(a, b),
            (Slot::Failed(a), Slot::Failed(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Holds token `id`.
    pub(crate) fn is_token(&self, id: TokenId) -> bool {
        matches!(self, Slot::Token(t) if t.id == id)
    }
}

type Front = papaya::HashMap<Arc<str>, Slot, foldhash::fast::RandomState>;

/// One provider's cached slots, keyed by connection id.
pub(crate) struct Table {
    front: Arc<Front>,
    index: moka::sync::Cache<Arc<str>, Slot>,
}

impl Table {
    /// A table holding at most `capacity` connections (least recently used
    /// evicted first).
    pub(crate) fn new(capacity: u64) -> Self {
        let front: Arc<Front> = Arc::new(
            papaya::HashMap::builder()
                .hasher(foldhash::fast::RandomState::default())
                .build(),
        );
        let evicted_from = Arc::clone(&front);
        let index = moka::sync::Cache::builder()
            .max_capacity(capacity)
            // LRU: a token just fetched (one token request) must not be
            // refused admission the way TinyLFU refuses new keys.
            .eviction_policy(EvictionPolicy::lru())
            .eviction_listener(move |key: Arc<Arc<str>>, value: Slot, _cause| {
                // Replaced, removed or evicted: drop it from the front map
                // unless a newer value took its place there.
                let _ = evicted_from
                    .pin()
                    .remove_if(&**key, |_, current| current.same(&value));
            })
            .build();
        Table { front, index }
    }

    /// The current slot for `key` (the hot path: one lock-free lookup and an
    /// `Arc` clone).
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<Slot> {
        self.front.pin().get(key).cloned()
    }

    /// Tells the bounded index that `key` was used (for LRU eviction).
    pub(crate) fn touch(&self, key: &str) {
        drop(self.index.get(key));
    }

    /// Publishes `slot` as the value of `key`, replacing any.
    pub(crate) fn publish(&self, key: &Arc<str>, slot: Slot) {
        self.index.entry(Arc::clone(key)).and_compute_with(|_| {
            self.front.pin().insert(Arc::clone(key), slot.clone());
            Op::Put(slot)
        });
    }

    /// Removes the token of `key` if it is still token `id`; returns whether
    /// it was there.
    pub(crate) fn remove_token(&self, key: &Arc<str>, id: TokenId) -> bool {
        let mut dropped = false;
        self.index
            .entry(Arc::clone(key))
            .and_compute_with(|current| {
                // The front map first (it may still hold a value moka has just
                // evicted and not yet reported).
                dropped = matches!(
                    self.front.pin().remove_if(&**key, |_, v| v.is_token(id)),
                    Ok(Some(_))
                );
                match current.as_ref().map(|e| e.value()) {
                    Some(slot) if slot.is_token(id) => {
                        dropped = true;
                        Op::Remove
                    }
                    _ => Op::Nop,
                }
            });
        dropped
    }

    /// Runs moka's pending maintenance (evictions and their notifications).
    #[cfg(test)]
    pub(crate) fn sync(&self) {
        self.index.run_pending_tasks();
    }

    /// (front map entries, bounded index entries).
    #[cfg(test)]
    pub(crate) fn lens(&self) -> (usize, u64) {
        (self.front.len(), self.index.entry_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::credential::TokenEntry;
    use crate::inject::Injection;

    fn token(conn: &str) -> Slot {
        let injection = Injection::header(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("bearer t"),
        );
        Slot::Token(Arc::new(TokenEntry::new(
            Arc::from("p"),
            Arc::from(conn),
            injection,
            None,
        )))
    }

    fn id(slot: &Slot) -> TokenId {
        match slot {
            Slot::Token(t) => t.id,
            Slot::Failed(_) => panic!("a token"),
        }
    }

    /// Every key of the front map is in the index with the very same value.
    fn assert_in_step(table: &Table) {
        table.sync();
        let (front, index) = table.lens();
        assert_eq!(front as u64, index, "front map and index hold as many");
        for (k, v) in table.front.pin().iter() {
            let in_index = table.index.get(k).expect("front key is in the index");
            assert!(in_index.same(v), "same value for {k}");
        }
    }

    #[test]
    fn the_front_map_is_bounded_by_the_index() {
        let table = Table::new(16);
        for i in 0..500 {
            let key: Arc<str> = Arc::from(format!("c{i}"));
            table.publish(&key, token(&key));
        }
        assert_in_step(&table);
        assert!(table.lens().0 <= 16, "{:?}", table.lens());
    }

    #[test]
    fn a_replaced_value_never_drops_its_successor() {
        let table = Table::new(16);
        let key: Arc<str> = Arc::from("c");
        let (a, b) = (token("c"), token("c"));
        table.publish(&key, a.clone());
        table.publish(&key, b.clone());
        assert_in_step(&table);
        assert!(table.get("c").unwrap().same(&b));

        // Invalidating the old token changes nothing; the current one goes.
        assert!(!table.remove_token(&key, id(&a)));
        assert!(table.get("c").unwrap().same(&b));
        assert!(table.remove_token(&key, id(&b)));
        assert!(table.get("c").is_none());
        assert!(!table.remove_token(&key, id(&b)), "only once");
        assert_in_step(&table);
    }

    #[test]
    fn the_least_recently_used_is_evicted() {
        let table = Table::new(2);
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        table.publish(&a, token("a"));
        table.publish(&b, token("b"));
        table.sync();
        table.touch("a");
        table.sync();
        table.publish(&c, token("c"));
        assert_in_step(&table);
        assert!(table.get("a").is_some(), "used recently: kept");
        assert!(table.get("b").is_none(), "least recently used: evicted");
        assert!(table.get("c").is_some(), "just fetched: admitted");
    }

    #[test]
    fn concurrent_writers_leave_the_maps_in_step() {
        let table = Arc::new(Table::new(8));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let table = Arc::clone(&table);
                std::thread::spawn(move || {
                    for i in 0..2_000u32 {
                        let key: Arc<str> = Arc::from(format!("c{}", (i * 7 + t) % 24));
                        let slot = token(&key);
                        table.publish(&key, slot.clone());
                        if i % 3 == 0 {
                            table.remove_token(&key, id(&slot));
                        }
                        if i % 5 == 0 {
                            table.touch(&key);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_in_step(&table);
        assert!(table.lens().0 <= 8, "{:?}", table.lens());
    }
}
