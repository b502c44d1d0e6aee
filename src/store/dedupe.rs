//! Dedupe keys: DingTalk redelivers events (reference §2.6, §3) and users double-tap, so every
//! delivery's key is remembered for a while; a second delivery is acknowledged, not re-run.
//!
//! A key is first *in flight* (being dispatched), then *done*. The difference matters when
//! DingTalk gives up waiting and redelivers while the first delivery is still being handled:
//! acknowledging that copy as a duplicate would lose the event if the first attempt then fails,
//! so the copy is told to come back later instead.
//!
//! In-flight keys live in memory only; the *done* mark is written to sled by `finish`, before
//! the delivery is acknowledged. One sled write per handled delivery instead of two (in flight,
//! then done): under load the first write cost as much as the second and protected nothing — an
//! in-flight mark only matters while its process lives, and after a crash the redelivery must be
//! handled anyway (it used to wait out the abandon window first).
//!
//! Value: the expiry as big-endian i64 milliseconds (done). Older versions also stored in-flight
//! keys, followed by the big-endian i64 millisecond after which the attempt counts as abandoned;
//! such values are still read. Expired keys are swept by value, at most once per
//! `SWEEP_EVERY_MS`, off the request path.
//!
//! A second tree, `signatures`, remembers which body each robot / card signature (timestamp +
//! sign headers) came with, until the timestamp leaves its freshness window: those signatures
//! do not cover the body, so the same headers must not authenticate a second, different body
//! (see `claim_signature`). Value: the expiry (big-endian i64 ms) followed by the SHA-256 of the
//! body; swept with the dedupe keys.
use super::{Store, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

const TREE: &str = "dedupe";
const SIGNATURES: &str = "signatures";

/// How often expired keys are removed: often enough to keep the tree at about one TTL of
/// traffic, rarely enough that the walk costs nothing noticeable.
pub const SWEEP_EVERY_MS: i64 = 60 * 60 * 1000;

#[derive(Clone, Debug)]
pub struct Dedupe {
    tree: sled::Tree,
    signatures: sled::Tree,
    next_sweep_ms: Arc<AtomicI64>,
    stats: Arc<DedupeStats>,
    /// Keys being handled right now (module header): a process's own attempts, shared by every
    /// clone. Holds at most one entry per delivery in progress.
    in_flight: Arc<Mutex<HashMap<String, Attempt>>>,
    /// Per stripe of keys, how many keys have left `in_flight` (see `judge`): lets a first
    /// delivery trust its one lock-free read of the tree instead of reading it again.
    departures: Arc<[AtomicU64; STRIPES]>,
}

/// Stripes of `Dedupe::departures`: enough that a finish in another key's stripe between a
/// read and the lock (about a microsecond) is rare at tens of thousands of deliveries a second.
const STRIPES: usize = 64;

fn stripe(key: &str) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault};
    // A fixed hasher (no random seed needed: this only spreads keys over counters).
    let h =
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(key);
    usize::try_from(h % STRIPES as u64).unwrap_or(0)
}

/// One attempt in progress: the expiry its done mark will carry, and when it counts as
/// abandoned (a dispatch that never returns must not block the key until it expires).
#[derive(Clone, Copy, Debug)]
struct Attempt {
    expires: i64,
    abandoned_at: i64,
}

/// What the tree answered since this process started. Repeats are logged at debug only (a
/// redelivery storm must not flood the log), so these counters are how an operator — and a
/// later `/metrics` — sees them. In memory: they describe the running process, not stored state.
#[derive(Debug, Default)]
pub struct DedupeStats {
    /// Deliveries acknowledged as already handled (DingTalk redeliveries, double taps).
    pub duplicates: AtomicU64,
    /// Copies that arrived while their first delivery was still being handled (asked to retry).
    pub in_flight: AtomicU64,
    /// Requests refused because their signature headers had come before with another body.
    pub replayed_signatures: AtomicU64,
}

/// What a signature (timestamp + sign) has authenticated before, seen from `claim_signature`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureUse {
    /// Not seen (or expired): it now belongs to this body.
    First,
    /// Seen with this very body: a retransmission of the same request, for dedupe to judge.
    SameBody,
    /// Seen with another body: captured headers replayed on a forged request.
    OtherBody,
}

/// What a delivery is, seen from the dedupe tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Not seen (or expired, or abandoned): handle it; it is now in flight.
    First,
    /// Already handled: acknowledge and do nothing.
    Duplicate,
    /// Another copy is being handled right now: ask the sender to try again later.
    InFlight,
}

#[derive(Clone, Copy)]
enum State {
    Done { expires: i64 },
    InFlight { expires: i64, abandoned_at: i64 },
}

impl State {
    fn decode(v: &[u8]) -> State {
        let at = |i: usize| {
            v.get(i..i + 8)
                .and_then(|b| b.try_into().ok())
                .map(i64::from_be_bytes)
        };
        match (at(0), at(8)) {
            (Some(expires), Some(abandoned_at)) if v.len() == 16 => State::InFlight {
                expires,
                abandoned_at,
            },
            (Some(expires), None) if v.len() == 8 => State::Done { expires },
            // Unreadable: treat as expired so the key can be recorded afresh.
            _ => State::Done { expires: 0 },
        }
    }
    fn expires(self) -> i64 {
        match self {
            State::Done { expires } | State::InFlight { expires, .. } => expires,
        }
    }
}

impl Dedupe {
    pub fn new(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(TREE)?,
            signatures: store.tree(SIGNATURES)?,
            next_sweep_ms: Arc::new(AtomicI64::new(i64::MIN)),
            stats: Arc::default(),
            in_flight: Arc::default(),
            departures: Arc::new(std::array::from_fn(|_| AtomicU64::new(0))),
        })
    }

    /// Counters shared by every clone of this `Dedupe`.
    pub fn stats(&self) -> &DedupeStats {
        &self.stats
    }

    /// Starts handling a delivery. On `First` the key is in flight until `finish` (handled),
    /// `forget` (failed), or `abandon_after_ms` passes. Atomic under concurrency.
    pub fn begin(
        &self,
        key: &str,
        now_ms: i64,
        expires_ms: i64,
        abandon_after_ms: i64,
    ) -> Result<Delivery, StoreError> {
        let seen = self.judge(
            key,
            now_ms,
            Attempt {
                expires: expires_ms,
                abandoned_at: now_ms.saturating_add(abandon_after_ms),
            },
        )?;
        match seen {
            Delivery::Duplicate => self.stats.duplicates.fetch_add(1, Ordering::Relaxed),
            Delivery::InFlight => self.stats.in_flight.fetch_add(1, Ordering::Relaxed),
            Delivery::First => 0,
        };
        self.maybe_sweep(now_ms)?;
        Ok(seen)
    }

    /// Marks an in-flight key handled; later copies are duplicates until it expires. The mark
    /// is in sled when this returns (the acknowledgement follows it).
    pub fn finish(&self, key: &str) -> Result<(), StoreError> {
        let Some(attempt) = self.attempts().get(key).copied() else {
            // Forgotten meanwhile: not resurrected.
            return Ok(());
        };
        // Written before the key leaves the map, so a copy never finds neither (see `judge`).
        self.tree.insert(key, &attempt.expires.to_be_bytes())?;
        self.depart(key);
        Ok(())
    }

    /// Forgets `key`, so a delivery whose handling failed before any state changed can be retried.
    pub fn forget(&self, key: &str) -> Result<(), StoreError> {
        self.depart(key);
        self.tree.remove(key)?;
        Ok(())
    }

    /// Takes `key` out of the in-flight map and counts the departure in its stripe, under the
    /// map's lock (see `judge`).
    fn depart(&self, key: &str) {
        let mut attempts = self.attempts();
        if attempts.remove(key).is_some() {
            if let Some(n) = self.departures.get(stripe(key)) {
                n.fetch_add(1, Ordering::Release);
            }
        }
    }

    /// What a delivery of `key` is now; on `First`, `attempt` is recorded as in flight.
    ///
    /// One read of the tree, without the lock, answers repeats (a redelivery storm) and almost
    /// every first delivery. The gap it leaves: an attempt at the same key may finish between
    /// that read and the lock — mark written, key gone from the map — and the copy would find
    /// neither. Every departure from the map is counted in its key's stripe under the lock, so
    /// an unchanged count proves no attempt in this stripe left since the read, and the read
    /// stands; otherwise the tree is read again under the lock. (A second read on every first
    /// delivery cost as much as the sled insert that follows it: a read can pay for splitting
    /// the leaf it visits.)
    fn judge(&self, key: &str, now_ms: i64, attempt: Attempt) -> Result<Delivery, StoreError> {
        let departures = self.departures.get(stripe(key));
        let seen_departures = departures.map(|n| n.load(Ordering::Acquire));
        let first_look = self.stored(key, now_ms)?;
        if let Some(Delivery::Duplicate) = first_look {
            return Ok(Delivery::Duplicate);
        }
        let mut attempts = self.attempts();
        if attempts
            .get(key)
            .is_some_and(|a| a.expires > now_ms && a.abandoned_at > now_ms)
        {
            return Ok(Delivery::InFlight);
        }
        let look = if departures.map(|n| n.load(Ordering::Acquire)) == seen_departures {
            first_look
        } else {
            self.stored(key, now_ms)?
        };
        if let Some(seen) = look {
            return Ok(seen);
        }
        attempts.insert(key.to_owned(), attempt);
        Ok(Delivery::First)
    }

    /// What the tree says of `key`: a live done mark, an older version's live in-flight mark,
    /// or nothing (absent, expired, abandoned).
    fn stored(&self, key: &str, now_ms: i64) -> Result<Option<Delivery>, StoreError> {
        Ok(match self.tree.get(key)?.as_deref().map(State::decode) {
            Some(State::Done { expires }) if expires > now_ms => Some(Delivery::Duplicate),
            Some(State::InFlight {
                expires,
                abandoned_at,
            }) if expires > now_ms && abandoned_at > now_ms => Some(Delivery::InFlight),
            _ => None,
        })
    }

    fn attempts(&self) -> MutexGuard<'_, HashMap<String, Attempt>> {
        // Entries are plain data: a panic elsewhere while the lock was held leaves them usable.
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds a signature (`pair`, e.g. `robot:<timestamp>:<sign>`) to the body it came with,
    /// until `expires_ms` (when the timestamp leaves its freshness window and the signature is
    /// refused as stale anyway). Atomic under concurrency: of two different bodies racing with
    /// one signature, exactly one is `First`.
    pub fn claim_signature(
        &self,
        pair: &str,
        body_sha256: &[u8; 32],
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<SignatureUse, StoreError> {
        let mut value = expires_ms.to_be_bytes().to_vec();
        value.extend_from_slice(body_sha256);
        let mut current = self.signatures.get(pair)?;
        let seen = loop {
            let live = current.as_deref().filter(|v| signature_expiry(v) > now_ms);
            match live {
                Some(v) if v.get(8..) == Some(&body_sha256[..]) => break SignatureUse::SameBody,
                Some(_) => break SignatureUse::OtherBody,
                None => {}
            }
            match self
                .signatures
                .compare_and_swap(pair, current.clone(), Some(value.clone()))?
            {
                Ok(()) => break SignatureUse::First,
                Err(e) => current = e.current,
            }
        };
        if seen == SignatureUse::OtherBody {
            self.stats
                .replayed_signatures
                .fetch_add(1, Ordering::Relaxed);
        }
        self.maybe_sweep(now_ms)?;
        Ok(seen)
    }

    fn maybe_sweep(&self, now_ms: i64) -> Result<(), StoreError> {
        let due = self.next_sweep_ms.load(Ordering::Relaxed);
        if now_ms >= due
            && self
                .next_sweep_ms
                .compare_exchange(
                    due,
                    now_ms.saturating_add(SWEEP_EVERY_MS),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            // The walk visits every key (a day of traffic can be millions): inside a request it
            // stalled that one response for as long as the walk took, so under a runtime it
            // runs on a blocking thread and the delivery that noticed goes on at once.
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    let this = self.clone();
                    drop(rt.spawn_blocking(move || this.sweep_logged(now_ms)));
                }
                Err(_) => self.sweep_logged(now_ms),
            }
        }
        Ok(())
    }

    fn sweep_logged(&self, now_ms: i64) {
        match self.sweep(now_ms) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "expired dedupe keys and signatures swept"),
            Err(e) => tracing::warn!(error = %e, "sweeping expired dedupe keys failed"),
        }
    }

    /// Removes expired keys and signatures; returns how many.
    pub fn sweep(&self, now_ms: i64) -> Result<usize, StoreError> {
        let keys = sweep_tree(&self.tree, now_ms, |v| State::decode(v).expires())?;
        let signatures = sweep_tree(&self.signatures, now_ms, signature_expiry)?;
        Ok(keys + signatures)
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

/// Expiry of a `signatures` value; an unreadable value counts as expired (claimed afresh).
fn signature_expiry(v: &[u8]) -> i64 {
    v.get(..8)
        .and_then(|b| b.try_into().ok())
        .map(i64::from_be_bytes)
        .unwrap_or(i64::MIN)
}

/// Removes the entries of `tree` whose expiry (read by `expiry`) is due; a value changed
/// meanwhile is left alone.
fn sweep_tree(
    tree: &sled::Tree,
    now_ms: i64,
    expiry: impl Fn(&[u8]) -> i64,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for item in tree.iter() {
        let (k, v) = item?;
        if expiry(&v) <= now_ms && tree.compare_and_swap(&k, Some(v), None::<&[u8]>)?.is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A delivery handled to the end: `begin` then `finish`; true when it was the first.
    fn handled(d: &Dedupe, key: &str, now_ms: i64, expires_ms: i64) -> bool {
        let first = d.begin(key, now_ms, expires_ms, 100).unwrap() == Delivery::First;
        if first {
            d.finish(key).unwrap();
        }
        first
    }

    #[test]
    fn duplicate_within_ttl_is_refused_and_expired_key_is_accepted_again() {
        let store = Store::temporary().unwrap();
        let d = Dedupe::new(&store).unwrap();
        assert!(handled(&d, "msg:1", 1000, 2000));
        assert!(!handled(&d, "msg:1", 1500, 2500));
        assert!(handled(&d, "msg:1", 2001, 3000));
        assert_eq!(d.sweep(3001).unwrap(), 1);
        assert!(d.is_empty());
    }

    #[test]
    fn in_flight_then_done_then_expired() {
        let store = Store::temporary().unwrap();
        let d = Dedupe::new(&store).unwrap();
        let ttl = 10_000;
        assert_eq!(d.begin("k", 0, ttl, 100).unwrap(), Delivery::First);
        assert_eq!(d.begin("k", 50, 50 + ttl, 100).unwrap(), Delivery::InFlight);
        d.finish("k").unwrap();
        assert_eq!(
            d.begin("k", 60, 60 + ttl, 100).unwrap(),
            Delivery::Duplicate
        );
        // Clones share the counters.
        let stats = d.clone();
        assert_eq!(stats.stats().in_flight.load(Ordering::Relaxed), 1);
        assert_eq!(stats.stats().duplicates.load(Ordering::Relaxed), 1);
        // Done keeps the first delivery's expiry.
        assert_eq!(d.begin("k", ttl, 2 * ttl, 100).unwrap(), Delivery::First);
    }

    #[test]
    fn abandoned_and_forgotten_attempts_can_be_retried() {
        let store = Store::temporary().unwrap();
        let d = Dedupe::new(&store).unwrap();
        assert_eq!(d.begin("k", 0, 10_000, 100).unwrap(), Delivery::First);
        // The attempt crashed: after the abandon window the key is free again.
        assert_eq!(d.begin("k", 100, 10_100, 100).unwrap(), Delivery::First);
        d.forget("k").unwrap();
        assert_eq!(d.begin("k", 101, 10_101, 100).unwrap(), Delivery::First);
        // finish on a forgotten key does not resurrect it.
        d.forget("k").unwrap();
        d.finish("k").unwrap();
        assert!(d.is_empty());
    }

    #[test]
    fn in_flight_keys_do_not_outlive_the_process_and_old_marks_are_honoured() {
        let store = Store::temporary().unwrap();
        let d = Dedupe::new(&store).unwrap();
        assert_eq!(d.begin("k", 0, 10_000, 5_000).unwrap(), Delivery::First);
        assert!(d.is_empty(), "nothing written before the attempt ends");
        // A restart (a new Dedupe on the same store): the interrupted attempt is not waited for.
        let after = Dedupe::new(&store).unwrap();
        assert_eq!(
            after.begin("k", 10, 10_010, 5_000).unwrap(),
            Delivery::First
        );
        after.finish("k").unwrap();
        assert_eq!(
            after.begin("k", 20, 10_020, 5_000).unwrap(),
            Delivery::Duplicate
        );
        // An in-flight mark an older version wrote is still honoured until it is abandoned.
        let mut old = 10_000i64.to_be_bytes().to_vec();
        old.extend_from_slice(&100i64.to_be_bytes());
        d.tree.insert("old", old).unwrap();
        assert_eq!(
            d.begin("old", 50, 10_050, 5_000).unwrap(),
            Delivery::InFlight
        );
        assert_eq!(d.begin("old", 100, 10_100, 5_000).unwrap(), Delivery::First);
    }

    #[test]
    fn expired_keys_are_swept_by_later_deliveries() {
        let store = Store::temporary().unwrap();
        let d = Dedupe::new(&store).unwrap();
        for i in 0..5 {
            assert!(handled(&d, &format!("old:{i}"), 0, 1_000));
        }
        assert_eq!(d.len(), 5);
        // Within the sweep interval nothing is walked.
        assert_eq!(
            d.begin("new:1", 2_000, SWEEP_EVERY_MS * 2, 100).unwrap(),
            Delivery::First
        );
        // In flight: in memory, not yet in the tree.
        assert_eq!(d.len(), 5);
        assert_eq!(
            d.begin("new:2", SWEEP_EVERY_MS, SWEEP_EVERY_MS * 3, 100)
                .unwrap(),
            Delivery::First
        );
        assert_eq!(d.len(), 0);
        d.finish("new:1").unwrap();
        d.finish("new:2").unwrap();
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn a_signature_belongs_to_its_first_body_until_it_expires() {
        let store = Store::temporary().unwrap();
        let d = Dedupe::new(&store).unwrap();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let claim = |body: &[u8; 32], now: i64| d.claim_signature("robot:1:s", body, now, 1_000);
        assert_eq!(claim(&a, 0).unwrap(), SignatureUse::First);
        assert_eq!(claim(&a, 10).unwrap(), SignatureUse::SameBody);
        assert_eq!(claim(&b, 20).unwrap(), SignatureUse::OtherBody);
        assert_eq!(d.stats().replayed_signatures.load(Ordering::Relaxed), 1);
        // Another signature is independent.
        assert_eq!(
            d.claim_signature("card:1:s", &b, 30, 1_000).unwrap(),
            SignatureUse::First
        );
        // Expired (the timestamp is stale by then anyway): claimable again, and swept.
        assert_eq!(claim(&b, 1_000).unwrap(), SignatureUse::First);
        assert_eq!(d.sweep(5_000).unwrap(), 2);
        assert!(d.signatures.is_empty());
    }

    #[test]
    fn one_of_many_concurrent_deliveries_is_first() {
        let store = Store::temporary().unwrap();
        let d = Dedupe::new(&store).unwrap();
        let firsts: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| d.begin("k", 0, 1000, 100).unwrap() == Delivery::First))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap() as usize).sum()
        });
        assert_eq!(firsts, 1);
    }

    /// The gap `judge` closes with its departure counts: a copy that reads the tree just before
    /// the first attempt writes its mark, and takes the lock just after the attempt left the
    /// map, must still see the mark. Copies race finishing attempts over many keys; every key
    /// is handled exactly once.
    #[test]
    fn a_copy_racing_a_finishing_attempt_is_never_handled_twice() {
        let store = Store::temporary().unwrap();
        let d = Dedupe::new(&store).unwrap();
        let keys: Vec<String> = (0..3000).map(|i| format!("evt:{i}")).collect();
        let handled = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for k in &keys {
                        // Copies that find the first attempt in flight come back, as DingTalk
                        // would, until the key is settled.
                        loop {
                            match d.begin(k, 0, 1_000_000, 1_000_000).unwrap() {
                                Delivery::First => {
                                    handled.fetch_add(1, Ordering::Relaxed);
                                    d.finish(k).unwrap();
                                    break;
                                }
                                Delivery::Duplicate => break,
                                Delivery::InFlight => std::thread::yield_now(),
                            }
                        }
                    }
                });
            }
        });
        assert_eq!(handled.into_inner(), keys.len());
    }

    #[test]
    fn second_open_of_same_path_reports_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _a = Store::open(dir.path()).unwrap();
        // sled's lock is per process via flock, so a second open inside one process may
        // succeed on some platforms; we only require that it never panics and that a
        // lock failure maps to Locked.
        if let Err(e) = Store::open(dir.path()) {
            assert!(matches!(e, StoreError::Locked { .. }), "{e}");
        }
    }
}
