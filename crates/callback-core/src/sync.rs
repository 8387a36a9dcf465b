//! The two small concurrency helpers every crate of ours uses: a mutex
//! lock that survives a poisoned mutex, and a cache whose entries expire.
//!
//! Both live here, once, because the store, delivery, inbound routing, the
//! alerter and the API all keep small in-process maps behind a mutex, and
//! each had grown its own copy.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Locks `mutex`, taking the data even when another thread panicked while
/// holding it. Every mutex of ours guards a map or a queue changed by
/// single operations (an insert, a remove, a push), so a panic between
/// them leaves the data consistent; refusing it would turn one panic into
/// a panic on every later use.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Values looked up elsewhere (the store, Redis), kept for `ttl`. The
/// absence of a value is cached too (`None`), so a lookup that found
/// nothing is not repeated on every request. Bounded: once `capacity`
/// entries are held, the map is emptied before the next one goes in, which
/// costs a few fresh lookups and never grows memory.
pub struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (Instant, Option<V>)>>,
    ttl: Duration,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// The value kept for `key`: `Some(None)` when its absence is kept,
    /// `None` when nothing fresh is.
    pub fn get(&self, key: &K) -> Option<Option<V>> {
        lock(&self.entries)
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, value)| value.clone())
    }

    pub fn put(&self, key: K, value: Option<V>) {
        let mut entries = lock(&self.entries);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    /// Drops `key`, so the next lookup reads the source again.
    pub fn forget(&self, key: &K) {
        lock(&self.entries).remove(key);
    }

    /// Drops every entry.
    pub fn clear(&self) {
        lock(&self.entries).clear();
    }

    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_and_an_absence_are_kept_until_forgotten() {
        let cache = TtlCache::new(Duration::from_secs(60), 10);
        assert_eq!(cache.get(&"a"), None);
        cache.put("a", Some(1));
        cache.put("b", None);
        assert_eq!(cache.get(&"a"), Some(Some(1)));
        assert_eq!(cache.get(&"b"), Some(None));
        cache.forget(&"a");
        assert_eq!(cache.get(&"a"), None);
    }

    #[test]
    fn an_entry_older_than_the_ttl_is_not_given() {
        let cache = TtlCache::new(Duration::ZERO, 10);
        cache.put("a", Some(1));
        assert_eq!(cache.get(&"a"), None);
    }

    #[test]
    fn a_full_cache_starts_over_instead_of_growing() {
        let cache = TtlCache::new(Duration::from_secs(60), 2);
        cache.put(1, Some("one"));
        cache.put(2, Some("two"));
        cache.put(2, Some("deux"));
        assert_eq!(cache.len(), 2, "replacing a key does not empty the map");
        cache.put(3, Some("three"));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&3), Some(Some("three")));
        assert_eq!(cache.get(&1), None);
    }

    #[test]
    fn a_poisoned_mutex_still_gives_its_data() {
        let mutex = std::sync::Arc::new(Mutex::new(vec![1]));
        let held = mutex.clone();
        let _ = std::thread::spawn(move || {
            let _guard = held.lock();
            panic!("poison it");
        })
        .join();
        assert!(mutex.is_poisoned());
        lock(&mutex).push(2);
        assert_eq!(*lock(&mutex), [1, 2]);
    }
}
