//! One provider's cache: a lock-free map, bounded, the least recently used
//! evicted first.
//!
//! # One map, no moka
//!
//! Reads go to a `papaya` map (lock-free; a read writes no shared memory
//! unless it has to record a use, see below). Until issue 16 a bounded moka
//! cache was kept in step with it as the eviction index, which doubled the
//! bookkeeping per cached token. Measured at 100,000 entries on one thread
//! (`VmRSS` growth per entry, the `memory` tests below, then for the old
//! design): moka's index alone (LRU, eviction listener, each key read once)
//! **335 B** per entry, the papaya map alone **79 B**, the token entry of the
//! time (token kept twice, rarely used fields inline) about **550 B**,
//! together 955 B; the load harness's `tenants` scenario showed 1,055-1,156 B
//! per token, against a target of 256 B beyond the token's own bytes.
//! moka's share alone was over that target, so the index is gone and the
//! map bounds itself:
//!
//! - **Use order.** Every value carries a *stamp*: a logical time from the
//!   table's `tick`, which each publish advances by 2 (even stamps). A read
//!   re-stamps the value with `tick + 1` (odd: after the last publish, before
//!   the next) when its stamp is more than `slack` behind (`slack` = 1/16 of
//!   the capacity, in publishes; 0 for tables under 16 entries, which makes
//!   the order exact). So a read of a recently used value only loads two
//!   words, and the order is off by at most `slack` publishes.
//! - **Eviction.** A publish that adds a key to a full table evicts until
//!   the table holds `capacity` values again, least recently stamped first.
//!   Victims are taken from a list made by one scan of the map: the
//!   1/16 of the capacity (at least the excess) with the oldest stamps, in
//!   order; a victim is evicted only if its value's stamp is still at most
//!   the scan's cutoff (a value replaced since then, or read and
//!   re-stamped, is newer and stays). One scan per `capacity / 16` evictions: amortised, a constant
//!   cost per eviction.
//! - **Writers are serialised** by one mutex per table (publish,
//!   invalidate, evict; fetches, not requests): so the scan and the removals
//!   it allows see a consistent order of publishes, and a value published
//!   after a scan always carries a stamp above its cutoff, so a replaced
//!   value never drops its successor. Readers never take it.
//!
//! - **What a thread read** ([`memo`]): each thread remembers, per table,
//!   the first key it read since the map last changed and its value
//!   (weakly), with the table's version; every change to the map advances
//!   the version. A thread that reads the same key again (a provider's
//!   default connection: most requests) takes the value from there while
//!   the version stands, which skips the map's guard, hash and probe.
//!
//! The map is bounded: at most `capacity` values once the writer that added
//! the last key returns. Failures ([`Slot::Failed`]) are cached, stamped and
//! evicted like tokens.
//!
//! Per cached 2BA token now (40-byte token, same single-thread measurement):
//! the map 44 B (a 32-byte block per entry: the key and a pointer, the rest
//! its table), the value 192 B (a 128-byte block holding the use stamp, the
//! `Arc` counts and the [`TokenEntry`], and the 64-byte header value),
//! 237 B for the whole table. The value is one block that the map and every
//! credential share ([`Cached`]): the map's value is one pointer, and a hit
//! is one `Arc` clone. The map frees its old tables as soon as it has
//! resized ([`promptly_freed`]).
//!
//! In the load harness's `tenants` scenario (100,000 tokens fetched 64 at a
//! time) the process grows 290-293 B per token: glibc's `mallinfo2` puts
//! about 240 B of it in use and about 30 B in free chunks left between the
//! entries by the fill's transient allocations. Each fetch's future is
//! boxed before it is spawned (see `Inner::pending`): a tokio task is
//! allocated with a 128-byte alignment, and a 6 KiB task allocated that way
//! for every fetch left 4-16 KiB holes that the next fetches could not
//! fill, over 200 B per token.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::{Arc, Mutex, MutexGuard};

use super::credential::{Failure, TokenEntry};

/// A cache value: a token or a failure being backed off.
pub(crate) enum Slot {
    Token(TokenEntry),
    /// Rare, and larger than a token: boxed.
    Failed(Box<Failure>),
}

/// A cache value and its use stamp in one block, shared by the map and
/// every [`Credential`](super::Credential) handed out for it: one `Arc`
/// clone per hit, and the map's value is one pointer.
pub(crate) struct Cached {
    /// The table's logical time of the last recorded use (see the module
    /// documentation).
    used: AtomicU64,
    pub(crate) slot: Slot,
}

impl Cached {
    pub(crate) fn new(slot: Slot) -> Arc<Cached> {
        Arc::new(Cached {
            used: AtomicU64::new(0),
            slot,
        })
    }

    /// The failure, if this is one.
    pub(crate) fn failure(&self) -> Option<&Failure> {
        match &self.slot {
            Slot::Token(_) => None,
            Slot::Failed(failure) => Some(failure),
        }
    }
}

type Map = papaya::HashMap<Arc<str>, Arc<Cached>, foldhash::fast::RandomState>;

/// An empty papaya map that frees what it retires as soon as no reader can
/// see it any more.
///
/// papaya frees a replaced or removed value, and the old table after each
/// resize, through its garbage collector, which by default waits for 32
/// retirements per thread before it frees anything. A cache that fills
/// without replacing anything retires only its old tables (about one per
/// doubling), so it never got there: at 100,000 entries the tables of
/// every earlier size, 2.2 MB, stayed allocated (12 B per entry in the
/// `memory` measurements below).
///
/// The price: each retirement tries to free at once, and each try starts
/// with a process-wide memory barrier (a `membarrier` system call). A
/// publish that evicts took about 17 µs instead of 1.7 µs with two threads
/// reading (`memory::publish_with_eviction`). Fine for a token table, whose
/// writers are fetches, each a token request (a publish replaces or evicts
/// about one value); not for a map that requests write.
fn promptly_freed<K, V>() -> papaya::HashMap<K, V, foldhash::fast::RandomState> {
    papaya::HashMap::builder()
        .hasher(foldhash::fast::RandomState::default())
        .collector(seize::Collector::new().batch_size(1))
        .build()
}

/// One provider's cached slots, keyed by connection id.
pub(crate) struct Table {
    map: Map,
    capacity: usize,
    /// Logical time: +2 per publish.
    tick: AtomicU64,
    /// How far (in ticks) a value's stamp may lag before a read re-stamps it.
    slack: u64,
    /// Serialises writers; holds the eviction candidates.
    writer: Mutex<Victims>,
    /// This table among all tables of the process, for the threads' memos
    /// ([`memo`]): never reused, so that a memo can never be taken for a
    /// later table's.
    id: u64,
    /// Advanced (under the writer lock) after every change to `map`: a
    /// thread's memo of a read is the map's current value while this has
    /// not moved.
    version: AtomicU64,
}

/// The next values to evict, from the last scan.
#[derive(Default)]
struct Victims {
    /// Keys, the most recently used first (taken from the end).
    keys: Vec<Arc<str>>,
    /// Evict a victim only if its value's stamp is at most this.
    cutoff: u64,
}

impl Table {
    /// A table holding at most `capacity` connections (least recently used
    /// evicted first).
    pub(crate) fn new(capacity: u64) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
        Table {
            map: promptly_freed(),
            capacity,
            tick: AtomicU64::new(0),
            slack: 2 * (capacity / 16) as u64,
            writer: Mutex::new(Victims::default()),
            id: memo::new_table_id(),
            version: AtomicU64::new(0),
        }
    }

    /// The current value for `key`, counted as a use. The hot path: the
    /// value this thread remembered for `key`, when the table has not
    /// changed since ([`memo`]), else one lock-free lookup; then two loads
    /// and an `Arc` clone, and a store only when the value's stamp lags by
    /// more than the slack.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Cached>> {
        // Read before the map: a change after this read moves the version
        // past it, so a value remembered with it is never taken for newer.
        let version = self.version.load(Acquire);
        let cached = match memo::recall(self.id, version, key) {
            Some(cached) => cached,
            None => {
                let map = self.map.pin();
                let (key, value) = map.get_key_value(key)?;
                // The `Arc` count first: the stamp shares its cache line,
                // and taking the line for the count's write before reading
                // the stamp spares a second transfer when other threads
                // hold the same value.
                let cached = Arc::clone(value);
                memo::remember(self.id, version, key, &cached);
                cached
            }
        };
        let now = self.tick.load(Relaxed) + 1;
        if now.saturating_sub(cached.used.load(Relaxed)) > self.slack {
            cached.used.store(now, Relaxed);
        }
        Some(cached)
    }

    /// Marks a change to the map (called under the writer lock, right
    /// after the change): every thread's memo of this table is out of
    /// date. Never before the change: a thread could then remember the old
    /// value under the new version.
    fn changed(&self) {
        self.version.fetch_add(1, Release);
    }

    fn writer(&self) -> MutexGuard<'_, Victims> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes `cached` (a new value, never published before) as the
    /// value of `key`, replacing any; evicts the least recently used when
    /// that makes the table hold more than its capacity.
    pub(crate) fn publish(&self, key: &Arc<str>, cached: &Arc<Cached>) {
        let mut victims = self.writer();
        let stamp = self.tick.fetch_add(2, Relaxed) + 2;
        let map = self.map.pin();
        // A value published a second time could be re-stamped by a reader
        // with an older stamp than its new one.
        debug_assert_eq!(cached.used.load(Relaxed), 0, "published once");
        cached.used.store(stamp, Relaxed);
        let added = map.insert(Arc::clone(key), Arc::clone(cached)).is_none();
        // At once, not only after the evictions below (a scan may take a
        // while): a thread that read the new value from the map and tells
        // another must not find the old one in that thread's memo.
        self.changed();
        if added {
            // Two scans at most: readers re-stamping every victim of both
            // could otherwise keep this going; the next publish evicts then.
            let mut scans = 0;
            while map.len() > self.capacity {
                let Some(victim) = victims.keys.pop() else {
                    if scans == 2 {
                        break;
                    }
                    scans += 1;
                    *victims = self.scan(&map);
                    continue;
                };
                let cutoff = victims.cutoff;
                if let Ok(Some(_)) = map.remove_if(&*victim, |_, h| h.used.load(Relaxed) <= cutoff)
                {
                    self.changed();
                }
            }
        }
    }

    /// The values to evict next: at least the excess over the capacity and
    /// 1/16 of the capacity, the oldest stamps, the oldest last.
    fn scan(
        &self,
        map: &papaya::HashMapRef<
            '_,
            Arc<str>,
            Arc<Cached>,
            foldhash::fast::RandomState,
            impl papaya::Guard,
        >,
    ) -> Victims {
        let mut stamps: Vec<u64> = map.iter().map(|(_, h)| h.used.load(Relaxed)).collect();
        if stamps.is_empty() {
            return Victims::default();
        }
        let want = (stamps.len().saturating_sub(self.capacity))
            .max(self.capacity / 16)
            .clamp(1, stamps.len());
        let (_, &mut cutoff, _) = stamps.select_nth_unstable(want - 1);
        drop(stamps);
        let mut old: Vec<(u64, Arc<str>)> = map
            .iter()
            .filter_map(|(k, h)| {
                let used = h.used.load(Relaxed);
                (used <= cutoff).then(|| (used, Arc::clone(k)))
            })
            .collect();
        // The oldest last: taken first.
        old.sort_unstable_by_key(|(used, _)| std::cmp::Reverse(*used));
        Victims {
            keys: old.into_iter().map(|(_, k)| k).collect(),
            cutoff,
        }
    }

    /// Removes the value of `key` if it is still `token` (the very same
    /// value, not merely an equal one); returns whether it was there.
    pub(crate) fn remove_token(&self, key: &Arc<str>, token: &Arc<Cached>) -> bool {
        let _writer = self.writer();
        let removed = matches!(
            self.map
                .pin()
                .remove_if(&**key, |_, c| Arc::ptr_eq(c, token)),
            Ok(Some(_))
        );
        if removed {
            self.changed();
        }
        removed
    }

    /// How many values the table holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// What each thread read from each table: a thread that keeps reading the
/// same key (a provider's default connection, which most
/// requests use) takes the value from here, without the map's lookup (its
/// guard, the key's hash, the probe: about 150 instructions per request).
///
/// A memo is good while its table's `version` is the one read before the
/// map was: every change to the map advances it once done, so a memo never
/// outlives the value's place in the map, and a thread that learns of a
/// change (the token it waited for was published) finds the new value.
/// The memo holds the value weakly: a token that leaves the map is freed
/// (and its secrets zeroed) when the last request using it ends, whatever
/// the memos still name.
mod memo {
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::{Arc, Weak};

    use super::Cached;
    use crate::route::same_bytes;

    /// Memos per thread, one per table (by table id, modulo): the tables
    /// of an engine get consecutive ids, so up to this many providers in
    /// use at once never displace each other.
    const SLOTS: usize = 64;

    struct Memo {
        table: u64,
        version: u64,
        key: Arc<str>,
        value: Weak<Cached>,
    }

    thread_local! {
        static MEMOS: RefCell<[Option<Memo>; SLOTS]> =
            const { RefCell::new([const { None }; SLOTS]) };
    }

    /// A table id never handed out before.
    pub(super) fn new_table_id() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Relaxed)
    }

    fn slot(table: u64) -> usize {
        (table % SLOTS as u64) as usize
    }

    /// The value this thread read for `key` from `table` at `version`, if
    /// it still exists.
    #[inline]
    pub(super) fn recall(table: u64, version: u64, key: &str) -> Option<Arc<Cached>> {
        MEMOS
            .try_with(|memos| {
                let memos = memos.try_borrow().ok()?;
                let memo = memos[slot(table)].as_ref()?;
                // The same text first by address: a connection used again
                // (a provider's default one, a kept `Connection`) passes
                // the very `Arc<str>` its entry was published with.
                let same_key = std::ptr::eq(memo.key.as_ptr(), key.as_ptr())
                    && memo.key.len() == key.len()
                    || same_bytes(memo.key.as_bytes(), key.as_bytes());
                if memo.table != table || memo.version != version || !same_key {
                    return None;
                }
                memo.value.upgrade()
            })
            .ok()
            .flatten()
    }

    /// Remembers that `key` of `table` held `value` at `version`; unless
    /// this thread already remembers another key of `table` at `version`:
    /// a thread that reads many keys of one table (one connection per
    /// tenant) would otherwise rewrite its memo, two reference counts up
    /// and two down, on every read, for a memo it never uses.
    pub(super) fn remember(table: u64, version: u64, key: &Arc<str>, value: &Arc<Cached>) {
        // During the thread's exit (the memos gone) or a re-entrant call
        // (none is made while they are borrowed), nothing is remembered.
        let _ = MEMOS.try_with(|memos| {
            if let Ok(mut memos) = memos.try_borrow_mut() {
                let memo = &mut memos[slot(table)];
                if memo
                    .as_ref()
                    .is_some_and(|m| m.table == table && m.version == version)
                {
                    return;
                }
                *memo = Some(Memo {
                    table,
                    version,
                    key: Arc::clone(key),
                    value: Arc::downgrade(value),
                });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::credential::TokenEntry;
    use crate::inject::Injection;

    fn token(conn: &str) -> Arc<Cached> {
        let injection = Injection::header(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("bearer t"),
        );
        Cached::new(Slot::Token(TokenEntry::new(
            Arc::from(conn),
            injection,
            None,
            Box::default(),
        )))
    }

    #[test]
    fn the_map_is_bounded_by_the_capacity() {
        let table = Table::new(16);
        for i in 0..500 {
            let key: Arc<str> = Arc::from(format!("c{i}"));
            table.publish(&key, &token(&key));
            assert!(table.len() <= 16, "{}", table.len());
        }
        assert_eq!(table.len(), 16);
        // The 16 most recent keys are the ones left.
        for i in 484..500 {
            assert!(table.get(&format!("c{i}")).is_some(), "c{i}");
        }
    }

    #[test]
    fn a_replaced_value_never_drops_its_successor() {
        let table = Table::new(16);
        let key: Arc<str> = Arc::from("c");
        let (a, b) = (token("c"), token("c"));
        table.publish(&key, &a);
        table.publish(&key, &b);
        assert_eq!(table.len(), 1);
        assert!(Arc::ptr_eq(&table.get("c").unwrap(), &b));

        // Invalidating the old token changes nothing; the current one goes.
        assert!(!table.remove_token(&key, &a));
        assert!(Arc::ptr_eq(&table.get("c").unwrap(), &b));
        assert!(table.remove_token(&key, &b));
        assert!(table.get("c").is_none());
        assert!(!table.remove_token(&key, &b), "only once");
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn a_value_replaced_after_the_scan_is_not_evicted() {
        // Capacity 32: a scan picks 2 victims; the second is replaced
        // before its turn and must stay.
        let table = Table::new(32);
        let keys: Vec<Arc<str>> = (0..33).map(|i| Arc::from(format!("c{i}"))).collect();
        for k in &keys[..32] {
            table.publish(k, &token(k));
        }
        table.publish(&keys[32], &token(&keys[32]));
        assert!(table.get("c0").is_none(), "oldest evicted");
        // c1 is the next victim; replace it, then add one more key.
        let fresh = token("c1");
        table.publish(&keys[1], &fresh);
        let extra: Arc<str> = Arc::from("c33");
        table.publish(&extra, &token(&extra));
        assert!(
            Arc::ptr_eq(&table.get("c1").unwrap(), &fresh),
            "the successor stays"
        );
        assert!(table.get("c2").is_none(), "the next oldest goes instead");
        assert_eq!(table.len(), 32);
    }

    #[test]
    fn the_least_recently_used_is_evicted() {
        let table = Table::new(2);
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        table.publish(&a, &token("a"));
        table.publish(&b, &token("b"));
        assert!(table.get("a").is_some());
        table.publish(&c, &token("c"));
        assert!(table.get("a").is_some(), "used recently: kept");
        assert!(table.get("b").is_none(), "least recently used: evicted");
        assert!(table.get("c").is_some(), "just fetched: admitted");
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn reads_order_a_large_table_within_the_slack() {
        // 1,024 entries (slack 64 publishes): the first 100 keys are read
        // after the table filled, then 100 new keys come in; the evicted
        // are 100 of the unread, never a read one.
        let table = Table::new(1024);
        let keys: Vec<Arc<str>> = (0..1124).map(|i| Arc::from(format!("c{i}"))).collect();
        for k in &keys[..1024] {
            table.publish(k, &token(k));
        }
        for k in &keys[..100] {
            assert!(table.get(k).is_some());
        }
        for k in &keys[1024..] {
            table.publish(k, &token(k));
        }
        assert_eq!(table.len(), 1024);
        assert!(keys[..100].iter().all(|k| table.get(k).is_some()));
        let unread_left = keys[100..1024]
            .iter()
            .filter(|k| table.get(k).is_some())
            .count();
        assert_eq!(unread_left, 924 - 100);
    }

    #[test]
    fn failures_are_cached_and_evicted_like_tokens() {
        let table = Table::new(1);
        let failure = || {
            Cached::new(Slot::Failed(Box::new(Failure {
                error: crate::error::Error::UnknownProvider {
                    provider: "p".into(),
                },
                retry_at: std::time::Duration::ZERO,
                attempts: 1,
            })))
        };
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        table.publish(&a, &failure());
        assert!(table.get("a").unwrap().failure().is_some());
        table.publish(&b, &failure());
        assert!(table.get("a").is_none());
        assert!(table.get("b").unwrap().failure().is_some());
    }

    #[test]
    fn concurrent_writers_keep_the_bound() {
        let table = Arc::new(Table::new(8));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let table = Arc::clone(&table);
                std::thread::spawn(move || {
                    for i in 0..2_000u32 {
                        let key: Arc<str> = Arc::from(format!("c{}", (i * 7 + t) % 24));
                        let value = token(&key);
                        table.publish(&key, &value);
                        if i % 3 == 0 {
                            table.remove_token(&key, &value);
                        }
                        if i % 5 == 0 {
                            let _ = table.get(&key);
                        }
                        assert!(table.len() <= 8 + 4, "{}", table.len());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(table.len() <= 8, "{}", table.len());
        // Every value left is one that was published for its key.
        for (k, c) in table.map.pin().iter() {
            match &c.slot {
                Slot::Token(t) => assert_eq!(t.connection(), &**k),
                Slot::Failed(_) => panic!("no failures here"),
            }
        }
    }

    /// `table.get(key)` is `expected`, the very value (by pointer).
    fn assert_reads(table: &Table, key: &str, expected: Option<&Arc<Cached>>) {
        match (table.get(key), expected) {
            (Some(got), Some(expected)) => {
                assert!(Arc::ptr_eq(&got, expected), "{key}: another value")
            }
            (None, None) => {}
            (got, expected) => panic!(
                "{key}: read {}, expected {}",
                got.map_or("nothing", |_| "a value"),
                expected.map_or("nothing", |_| "a value")
            ),
        }
    }

    #[test]
    fn a_thread_never_reads_a_remembered_value_after_it_changed() {
        let table = Table::new(2);
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        let a1 = token("a");
        table.publish(&a, &a1);
        // Twice: the second read is the remembered one.
        assert_reads(&table, "a", Some(&a1));
        assert_reads(&table, "a", Some(&a1));

        // Replaced.
        let a2 = token("a");
        table.publish(&a, &a2);
        assert_reads(&table, "a", Some(&a2));
        assert_reads(&table, "a", Some(&a2));

        // Removed (a rejected token).
        assert!(table.remove_token(&a, &a2));
        assert_reads(&table, "a", None);
        let a3 = token("a");
        table.publish(&a, &a3);
        assert_reads(&table, "a", Some(&a3));

        // Evicted: `a` is the least recently used of three in a table of
        // two once `b` is read after it.
        let b1 = token("b");
        table.publish(&b, &b1);
        assert_reads(&table, "b", Some(&b1));
        table.publish(&c, &token("c"));
        assert_reads(&table, "a", None);
        assert_reads(&table, "b", Some(&b1));

        // Another key is never taken for the remembered one.
        assert_reads(&table, "bb", None);
        assert_reads(&table, "", None);

        // Keys read in turn (tenants), each its own value, before and
        // after a change.
        let c1 = table.get("c").expect("c is cached");
        for _ in 0..3 {
            assert_reads(&table, "b", Some(&b1));
            assert_reads(&table, "c", Some(&c1));
        }
        let b2 = token("b");
        table.publish(&b, &b2);
        for _ in 0..3 {
            assert_reads(&table, "c", Some(&c1));
            assert_reads(&table, "b", Some(&b2));
        }
    }

    #[test]
    fn a_remembered_value_is_not_kept_alive() {
        let table = Table::new(4);
        let key: Arc<str> = "k".into();
        let value = token("k");
        table.publish(&key, &value);
        assert_reads(&table, "k", Some(&value));
        assert_reads(&table, "k", Some(&value));
        // The memo names the value weakly: once the map lets it go (and
        // its garbage collector frees it), so do the memos, and the token
        // is dropped with its secrets.
        assert_eq!(Arc::weak_count(&value), 1, "the memo");
        assert_eq!(Arc::strong_count(&value), 2, "this test and the map only");
    }

    #[test]
    fn tables_never_share_what_a_thread_remembers() {
        // More tables than a thread has memos, so that some share a slot.
        let tables: Vec<Table> = (0..150).map(|_| Table::new(4)).collect();
        let key: Arc<str> = "default".into();
        let values: Vec<Arc<Cached>> = tables.iter().map(|_| token("default")).collect();
        for (table, value) in tables.iter().zip(&values) {
            table.publish(&key, value);
        }
        for _ in 0..3 {
            for (table, value) in tables.iter().zip(&values) {
                assert_reads(table, "default", Some(value));
            }
        }
        // A table made after another was dropped does not inherit its memo.
        let (old, new) = (Table::new(4), Table::new(4));
        old.publish(&key, &token("default"));
        assert_reads(&old, "default", old.get("default").as_ref());
        drop(old);
        assert_reads(&new, "default", None);
    }

    #[test]
    fn a_value_published_on_another_thread_is_read_at_once() {
        let table = Arc::new(Table::new(4));
        let key: Arc<str> = "k".into();
        table.publish(&key, &token("k"));
        for _ in 0..200 {
            // This thread remembers the current value...
            let before = table.get("k").expect("a value");
            // ...another replaces it...
            let next = token("k");
            let published = {
                let (table, key, next) = (Arc::clone(&table), Arc::clone(&key), Arc::clone(&next));
                std::thread::spawn(move || table.publish(&key, &next))
            };
            published.join().unwrap();
            // ...and once that is known here, the new value is read.
            let after = table.get("k").expect("a value");
            assert!(Arc::ptr_eq(&after, &next), "the replaced value was read");
            assert!(!Arc::ptr_eq(&after, &before));
        }
    }
}

/// Resident bytes per entry at 100,000 entries, one thread (no concurrent
/// fill, so little fragmentation): the map alone, the entries alone, the
/// whole table. A measurement, run by hand, one at a time in its own
/// process, e.g.
/// `cargo test -p tokenauth-core --lib cache::table::memory -- --ignored --exact --nocapture cache::table::memory::whole_table`.
#[cfg(test)]
mod memory {
    use super::*;
    use crate::cache::credential::{Fetched, TokenEntry};

    const N: usize = 100_000;

    fn rss() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    }

    fn keys() -> Vec<Arc<str>> {
        (0..N)
            .map(|i| Arc::from(format!("tenant-{}", 10_000_000 + i)))
            .collect()
    }

    /// The load harness's provider (2BA-like: `Bearer {{ token.access }}`).
    fn provider() -> (crate::Provider, Arc<crate::inject::Shape>) {
        let providers = crate::Providers::from_toml(
            "p.toml",
            r#"
[providers.bench]
api = ["https://api.example.com/"]
login = { url = "https://api.example.com/token", body = "form", fields = { grant_type = "client_credentials" } }
response = { access_token = "/access_token", expires_in = "/expires_in" }
inject = { header = "Authorization", value = "Bearer {{ token.access }}" }
"#,
        )
        .unwrap();
        let p = providers.providers[0].clone();
        let shape = crate::inject::Shape::of(&p, Arc::from("bench"));
        (p, shape)
    }

    /// A 2BA-like entry: a 40-character token, rendered as the engine does,
    /// the header cloned once (as the first request does).
    fn entry(
        key: &Arc<str>,
        (p, shape): &(crate::Provider, Arc<crate::inject::Shape>),
    ) -> Arc<Cached> {
        let token: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(40)
            .collect();
        let access = secrecy::SecretString::from(token);
        let conn = crate::Connection::new(&**key);
        let injection = crate::inject::render_shaped(shape, p, &conn, Some(&access)).unwrap();
        let fetched = Fetched {
            access,
            obtained_by: Some(crate::error::RequestKind::Login),
            expires_at: std::time::SystemTime::now(),
            renew_at: std::time::SystemTime::now(),
            api_base: None,
        };
        let e = TokenEntry::new(key.clone(), injection, Some(fetched), Box::default());
        assert!(e.is_plain(), "the token is kept once");
        let mut headers = http::HeaderMap::new();
        e.injection().apply_to_headers(&mut headers);
        Cached::new(Slot::Token(e))
    }

    fn report(what: &str, before: u64) {
        let after = rss();
        eprintln!("MEMORY {what}: {} B per entry", (after - before) / N as u64);
    }

    #[test]
    #[ignore = "a measurement"]
    fn map_alone() {
        let keys = keys();
        let p = provider();
        let slots: Vec<Arc<Cached>> = keys.iter().map(|k| entry(k, &p)).collect();
        let table = Table::new(N as u64 + 1024);
        std::thread::sleep(std::time::Duration::from_millis(100));
        let before = rss();
        for (k, s) in keys.iter().zip(&slots) {
            table.publish(k, s);
        }
        report("papaya map alone", before);
    }

    #[test]
    #[ignore = "a measurement"]
    fn entries_alone() {
        let keys = keys();
        let p = provider();
        let mut slots = Vec::with_capacity(N);
        std::thread::sleep(std::time::Duration::from_millis(100));
        let before = rss();
        slots.extend(keys.iter().map(|k| entry(k, &p)));
        report("token entries", before);
    }

    /// What a publish costs in a full table (each one evicts), with
    /// readers on other threads: the price of [`promptly_freed`]'s
    /// barrier per retirement.
    #[test]
    #[ignore = "a measurement"]
    fn publish_with_eviction() {
        const CAPACITY: usize = 10_000;
        let keys = keys();
        let p = provider();
        let table = Arc::new(Table::new(CAPACITY as u64));
        for k in &keys[..CAPACITY] {
            table.publish(k, &entry(k, &p));
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (table, stop) = (Arc::clone(&table), Arc::clone(&stop));
                let keys: Vec<Arc<str>> = keys[..CAPACITY].to_vec();
                std::thread::spawn(move || {
                    let mut hits = 0u64;
                    while !stop.load(Relaxed) {
                        for k in &keys {
                            hits += u64::from(table.get(k).is_some());
                        }
                    }
                    hits
                })
            })
            .collect();
        let values: Vec<_> = keys[CAPACITY..].iter().map(|k| entry(k, &p)).collect();
        let started = std::time::Instant::now();
        for (k, v) in keys[CAPACITY..].iter().zip(&values) {
            table.publish(k, v);
        }
        let took = started.elapsed();
        stop.store(true, Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        eprintln!(
            "MEMORY publish with eviction: {} ns per publish",
            took.as_nanos() / (N - CAPACITY) as u128
        );
    }

    #[test]
    #[ignore = "a measurement"]
    fn whole_table() {
        let keys = keys();
        let p = provider();
        let table = Table::new(N as u64 + 1024);
        std::thread::sleep(std::time::Duration::from_millis(100));
        let before = rss();
        for k in &keys {
            table.publish(k, &entry(k, &p));
        }
        for k in &keys {
            let _ = table.get(k);
        }
        report("whole table", before);
    }
}
