//! The append-only, hash-chained audit trail (`domain::audit` says what a record is; this file
//! keeps them, chains them, reads them back and checks the chain). Records are written in the
//! same sled transaction as the order change they describe (see orders.rs), and the chain head
//! advances in that transaction too: sled transactions are serializable, so two writers can
//! never both build on the same head (the chain cannot fork), and the trail never disagrees
//! with the orders.
//!
//! Trees:
//! - `audit_chain`: key = sequence number (8 bytes big-endian, 1 for the first record) → the
//!   envelope `seq (8 bytes BE) ‖ prev_hash (32 bytes) ‖ hash (32 bytes) ‖ body`, where body is
//!   the record as JSON (serde_json of `AuditRecord`, exactly as written; never re-serialised).
//! - `audit_head`: key `head` → `seq (8 bytes BE) ‖ hash (32 bytes)` of the newest record, so
//!   deleting the newest records is detected too.
//! - `audit_index`: `o\0<order id>\0<seq>`, `u\0<user, lowercase>\0<seq>` (actor, requester's
//!   DingTalk userid and JumpServer username), `h\0<host, lowercase>\0<seq>` (hosts asked for
//!   and granted) → empty: the reading API's indexes.
//!
//! The exact bytes hashed, for anyone checking the trail without this program:
//!
//! ```text
//! hash = SHA-256( "accessbot-audit-v1" ‖ 0x00 ‖ seq as 8 bytes big-endian ‖ prev_hash (32 raw
//!                 bytes) ‖ body )
//! ```
//!
//! where prev_hash of record 1 is 32 zero bytes, and every later record's prev_hash is the hash
//! of the record before it. Hashing the body bytes as stored (not a re-serialisation) keeps old
//! records verifiable when the record type grows a field.
//!
//! Records written before the chain existed (tree `audit`, keyed by time, with `audit_by_order`)
//! are chained once, in time order, when the store is opened ([`migrate`]), followed by a
//! `TrailMigrated` record saying how many; the old trees are then emptied in the same
//! transaction.
//!
//! Past 600 lines on purpose: appending, migrating and verifying must agree on the envelope byte
//! for byte, so they live in one file.
//!
//! Longer than 600 lines on purpose: appending, migrating, reading and verifying all depend on the
//! exact hashed bytes documented above; one file keeps that layout in one place.
use super::{Store, StoreError};
use crate::domain::audit::{
    AuditEvent, AuditPage, AuditQuery, AuditRecord, BreakKind, ChainBreak, ChainReport,
    ChainedRecord,
};
use crate::domain::ids::OrderId;
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

pub(crate) const CHAIN: &str = "audit_chain";
pub(crate) const HEAD: &str = "audit_head";
pub(crate) const INDEX: &str = "audit_index";
/// The trees of the trail before it was chained (read once by [`migrate`]).
const LEGACY: &str = "audit";
const LEGACY_BY_ORDER: &str = "audit_by_order";

const HEAD_KEY: &[u8] = b"head";
/// How much older than the record after it a record can be (`Audit::list_since`): commits that
/// race are seconds apart; an hour leaves room for a slow retry.
const OUT_OF_ORDER: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);
const DOMAIN: &[u8] = b"accessbot-audit-v1\0";
const ZERO: [u8; 32] = [0; 32];
/// seq + prev + hash in front of the body.
const ENVELOPE_HEAD: usize = 8 + 32 + 32;

/// The hash of one record (see the module header).
pub fn chain_hash(seq: u64, prev: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(seq.to_be_bytes());
    h.update(prev);
    h.update(body);
    h.finalize().into()
}

/// A stored envelope taken apart (nothing checked yet).
struct Envelope<'a> {
    seq: u64,
    prev: [u8; 32],
    hash: [u8; 32],
    body: &'a [u8],
}

fn open_envelope(v: &[u8]) -> Option<Envelope<'_>> {
    if v.len() < ENVELOPE_HEAD {
        return None;
    }
    Some(Envelope {
        seq: u64::from_be_bytes(v.get(..8)?.try_into().ok()?),
        prev: v.get(8..40)?.try_into().ok()?,
        hash: v.get(40..72)?.try_into().ok()?,
        body: v.get(ENVELOPE_HEAD..)?,
    })
}

fn decode(body: &[u8]) -> Result<AuditRecord, StoreError> {
    serde_json::from_slice(body).map_err(|e| StoreError::Corrupt(format!("audit record: {e}")))
}

fn chained(v: &[u8]) -> Result<ChainedRecord, StoreError> {
    let e = open_envelope(v)
        .ok_or_else(|| StoreError::Corrupt("audit record shorter than its envelope".into()))?;
    Ok(ChainedRecord {
        seq: e.seq,
        prev_hash: hex::encode(e.prev),
        hash: hex::encode(e.hash),
        record: decode(e.body)?,
    })
}

fn read_head(v: Option<&[u8]>) -> Result<(u64, [u8; 32]), StoreError> {
    let Some(v) = v else {
        return Ok((0, ZERO));
    };
    let seq = v.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok());
    let hash = v.get(8..40).and_then(|b| <[u8; 32]>::try_from(b).ok());
    match (seq, hash, v.len()) {
        (Some(s), Some(h), 40) => Ok((u64::from_be_bytes(s), h)),
        _ => Err(StoreError::Corrupt("audit head is not 40 bytes".into())),
    }
}

fn index_key(kind: u8, value: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(value.len() + 11);
    k.push(kind);
    k.push(0);
    k.extend_from_slice(value.to_lowercase().as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn index_prefix(kind: u8, value: &str) -> Vec<u8> {
    let mut k = index_key(kind, value, 0);
    k.truncate(k.len() - 8);
    k
}

/// The index entries of one record (order ids are indexed as written, lowercased like the
/// rest: `R261122-007` and `r261122-007` are the same order).
fn index_keys(rec: &AuditRecord, seq: u64) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    if let Some(o) = &rec.order_id {
        keys.push(index_key(b'o', o.as_str(), seq));
    }
    for u in rec.users() {
        keys.push(index_key(b'u', u, seq));
    }
    if let Some(s) = &rec.subject {
        for h in &s.hosts {
            keys.push(index_key(b'h', h, seq));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The trail's trees inside one transaction.
pub(crate) struct AuditTx<'a> {
    pub chain: &'a TransactionalTree,
    pub head: &'a TransactionalTree,
    pub index: &'a TransactionalTree,
}

/// Appends `rec` after the current head, inside the caller's transaction.
pub(crate) fn stage(
    tx: &AuditTx<'_>,
    rec: &AuditRecord,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let head = tx.head.get(HEAD_KEY)?;
    let (last, prev) = read_head(head.as_deref()).map_err(ConflictableTransactionError::Abort)?;
    let seq = last + 1;
    let body = serde_json::to_vec(rec)
        .map_err(|e| ConflictableTransactionError::Abort(StoreError::Corrupt(e.to_string())))?;
    let hash = chain_hash(seq, &prev, &body);
    let mut val = Vec::with_capacity(ENVELOPE_HEAD + body.len());
    val.extend_from_slice(&seq.to_be_bytes());
    val.extend_from_slice(&prev);
    val.extend_from_slice(&hash);
    val.extend_from_slice(&body);
    tx.chain.insert(&seq.to_be_bytes()[..], val)?;
    for k in index_keys(rec, seq) {
        tx.index.insert(k, &[][..])?;
    }
    let mut h = Vec::with_capacity(40);
    h.extend_from_slice(&seq.to_be_bytes());
    h.extend_from_slice(&hash);
    tx.head.insert(HEAD_KEY, h)?;
    Ok(())
}

/// Chains the records an older version wrote un-chained (see the module header). Runs on every
/// open; does nothing once the old trees are empty. `now` dates the migration record.
pub(crate) fn migrate(db: &sled::Db, now: Timestamp) -> Result<usize, StoreError> {
    let has_legacy = db
        .tree_names()
        .iter()
        .any(|n| n.as_ref() == LEGACY.as_bytes());
    if !has_legacy {
        return Ok(0);
    }
    let legacy = db.open_tree(LEGACY)?;
    let legacy_by_order = db.open_tree(LEGACY_BY_ORDER)?;
    if legacy.is_empty() && legacy_by_order.is_empty() {
        return Ok(0);
    }
    // Read first (nothing else writes during open: sled holds the directory lock), in key order
    // = time order; a record that no longer reads is kept as a note saying so.
    let mut recs = Vec::new();
    let mut keys = Vec::new();
    let mut unreadable = 0usize;
    for item in legacy.iter() {
        let (k, v) = item?;
        keys.push(k);
        match decode(&v) {
            Ok(r) => recs.push(r),
            Err(e) => {
                unreadable += 1;
                recs.push(AuditRecord::new(
                    now,
                    None,
                    crate::domain::audit::Actor::System,
                    AuditEvent::Note,
                    format!("a record written before the chain could not be read: {e}"),
                ));
            }
        }
    }
    let by_order_keys: Vec<sled::IVec> = legacy_by_order.iter().keys().collect::<Result<_, _>>()?;
    let n = keys.len();
    let note = AuditRecord::new(
        now,
        None,
        crate::domain::audit::Actor::System,
        AuditEvent::TrailMigrated,
        format!(
            "chained {n} record(s) written before the audit trail was hash-chained, in time order ({unreadable} unreadable, kept as notes)"
        ),
    );
    let chain = db.open_tree(CHAIN)?;
    let head = db.open_tree(HEAD)?;
    let index = db.open_tree(INDEX)?;
    (&chain, &head, &index, &legacy, &legacy_by_order)
        .transaction(|(c, h, i, l, lb)| {
            let tx = AuditTx {
                chain: c,
                head: h,
                index: i,
            };
            for r in &recs {
                stage(&tx, r)?;
            }
            stage(&tx, &note)?;
            for k in &keys {
                l.remove(k)?;
            }
            for k in &by_order_keys {
                lb.remove(k)?;
            }
            Ok(())
        })
        .map_err(super::tx_error)?;
    db.flush()?;
    tracing::info!(
        records = n,
        unreadable,
        "audit trail: older records hash-chained"
    );
    Ok(n)
}

#[derive(Clone, Debug)]
pub struct Audit {
    chain: sled::Tree,
    head: sled::Tree,
    index: sled::Tree,
}

impl Audit {
    pub fn new(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            chain: store.tree(CHAIN)?,
            head: store.tree(HEAD)?,
            index: store.tree(INDEX)?,
        })
    }

    /// Appends a record that is not part of an order transition (e.g. a job that gave up).
    pub fn append(&self, rec: &AuditRecord) -> Result<(), StoreError> {
        (&self.chain, &self.head, &self.index)
            .transaction(|(c, h, i)| {
                stage(
                    &AuditTx {
                        chain: c,
                        head: h,
                        index: i,
                    },
                    rec,
                )
            })
            .map_err(super::tx_error)
    }

    fn get(&self, seq: u64) -> Result<Option<ChainedRecord>, StoreError> {
        self.chain
            .get(seq.to_be_bytes())?
            .map(|v| chained(&v))
            .transpose()
    }

    /// Sequence numbers under one index prefix, ascending.
    fn seqs(&self, prefix: &[u8]) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        for k in self.index.scan_prefix(prefix).keys() {
            let k = k?;
            let tail = k.get(prefix.len()..).unwrap_or_default();
            if let Ok(b) = <[u8; 8]>::try_from(tail) {
                out.push(u64::from_be_bytes(b));
            }
        }
        Ok(out)
    }

    /// The records `q` matches, newest or oldest first, one page of them, with how many match
    /// in all. An index narrows the walk when the query names an order, a user or a host.
    pub fn query(&self, q: &AuditQuery) -> Result<AuditPage, StoreError> {
        let mut q = q.clone();
        let mut user_seqs = Vec::new();
        if let Some(u) = &q.user {
            // A JumpServer username is on an order's records only from its preparation on;
            // the requester's DingTalk userid is on all of them.
            user_seqs = self.seqs(&index_prefix(b'u', u))?;
            for &s in &user_seqs {
                let Some(c) = self.get(s)? else { continue };
                let Some(sub) = &c.record.subject else {
                    continue;
                };
                let id = sub.requester.as_str();
                if sub.jms_username.eq_ignore_ascii_case(u)
                    && !id.eq_ignore_ascii_case(u)
                    && !q.user_aliases.iter().any(|a| a == id)
                {
                    q.user_aliases.push(id.to_owned());
                }
            }
            for a in q.user_aliases.clone() {
                user_seqs.extend(self.seqs(&index_prefix(b'u', &a))?);
            }
            user_seqs.sort_unstable();
            user_seqs.dedup();
        }
        let q = &q;
        let candidates: Option<Vec<u64>> = if let Some(o) = &q.order {
            Some(self.seqs(&index_prefix(b'o', o.as_str()))?)
        } else if let Some(h) = &q.host {
            Some(self.seqs(&index_prefix(b'h', h))?)
        } else if q.user.is_some() {
            Some(user_seqs)
        } else {
            None
        };
        let mut page = AuditPage::default();
        let limit = if q.limit == 0 { usize::MAX } else { q.limit };
        let take = |r: ChainedRecord, page: &mut AuditPage| {
            if q.matches(&r.record) {
                if page.total >= q.offset && page.records.len() < limit {
                    page.records.push(r);
                }
                page.total += 1;
            }
        };
        match candidates {
            Some(mut seqs) => {
                if q.newest_first {
                    seqs.reverse();
                }
                for s in seqs {
                    // An index entry whose record is gone is what `verify` reports.
                    if let Some(r) = self.get(s)? {
                        take(r, &mut page);
                    }
                }
            }
            None => {
                let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
                    if q.newest_first {
                        Box::new(self.chain.iter().rev())
                    } else {
                        Box::new(self.chain.iter())
                    };
                for item in iter {
                    let (_, v) = item?;
                    take(chained(&v)?, &mut page);
                }
            }
        }
        Ok(page)
    }

    /// The trail of one order, oldest first.
    pub fn list_for_order(&self, order: &OrderId) -> Result<Vec<AuditRecord>, StoreError> {
        let page = self.query(&AuditQuery {
            order: Some(order.clone()),
            ..AuditQuery::default()
        })?;
        Ok(page.records.into_iter().map(|c| c.record).collect())
    }

    /// Records at or after `since`, oldest first, at most `limit`.
    ///
    /// Walks back from the newest record and stops at one older than `since` by more than
    /// `OUT_OF_ORDER`: records are appended as things happen, so their times rise with their
    /// sequence numbers except where commits raced (seconds apart). A recent `since` then reads
    /// only the recent records instead of the whole trail.
    pub fn list_since(
        &self,
        since: Timestamp,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let stop = since.checked_sub(OUT_OF_ORDER).unwrap_or(Timestamp::MIN);
        if stop > Timestamp::MIN {
            let mut out = Vec::new();
            for item in self.chain.iter().rev() {
                let (_, v) = item?;
                let r = chained(&v)?.record;
                if r.at < stop {
                    break;
                }
                if r.at >= since {
                    out.push(r);
                }
            }
            out.reverse();
            out.truncate(limit.max(1));
            return Ok(out);
        }
        let page = self.query(&AuditQuery {
            since: Some(since),
            limit: limit.max(1),
            ..AuditQuery::default()
        })?;
        Ok(page.records.into_iter().map(|c| c.record).collect())
    }

    /// Every user the user index knows (actors, requesters, JumpServer usernames; lowercase),
    /// read from the index's keys alone.
    pub fn indexed_users(&self) -> Result<Vec<String>, StoreError> {
        let mut users: Vec<String> = Vec::new();
        for k in self.index.scan_prefix([b'u', 0]).keys() {
            let k = k?;
            // `u\0<user>\0<seq>`: the user is what lies between the two separators.
            let Some(user) = k.len().checked_sub(9).and_then(|end| k.get(2..end)) else {
                continue;
            };
            // Keys are sorted by user, so a user's keys are neighbours.
            let user = String::from_utf8_lossy(user);
            if users.last().map(String::as_str) != Some(&*user) {
                users.push(user.into_owned());
            }
        }
        Ok(users)
    }

    /// The records of any of `orders` or about any of `users` (as the user index has them), at
    /// or after `since`, in the trail's order, at most `limit`.
    pub fn records_of(
        &self,
        orders: &[OrderId],
        users: &[String],
        since: Timestamp,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut seqs = Vec::new();
        for o in orders {
            seqs.extend(self.seqs(&index_prefix(b'o', o.as_str()))?);
        }
        for u in users {
            seqs.extend(self.seqs(&index_prefix(b'u', u))?);
        }
        seqs.sort_unstable();
        seqs.dedup();
        let mut out = Vec::new();
        for s in seqs {
            if out.len() >= limit {
                break;
            }
            // An index entry whose record is gone is what `verify` reports.
            if let Some(c) = self.get(s)? {
                if c.record.at >= since {
                    out.push(c.record);
                }
            }
        }
        Ok(out)
    }

    /// One page of the whole trail, newest or oldest first, and how many records it holds:
    /// only the page's records are decoded (the count walks keys alone).
    pub fn page_all(
        &self,
        newest_first: bool,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<AuditRecord>, usize), StoreError> {
        // Counted from the first and last sequence numbers, not by walking every key (sled's
        // `len` does): records are numbered without gaps, unless deleted behind the program's
        // back, which the chain status reports; such a trail shows fewer rows than counted.
        let seq_of = |kv: Option<(sled::IVec, sled::IVec)>| {
            kv.and_then(|(k, _)| <[u8; 8]>::try_from(&k[..]).ok())
                .map(u64::from_be_bytes)
        };
        let total = match (seq_of(self.chain.first()?), seq_of(self.chain.last()?)) {
            (Some(first), Some(last)) if last >= first => {
                usize::try_from(last - first + 1).unwrap_or(usize::MAX)
            }
            _ => self.chain.len(),
        };
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if newest_first
        {
            Box::new(self.chain.iter().rev())
        } else {
            Box::new(self.chain.iter())
        };
        let mut page = Vec::with_capacity(limit.min(total));
        for item in iter.skip(offset).take(limit) {
            let (_, v) = item?;
            page.push(chained(&v)?.record);
        }
        Ok((page, total))
    }

    pub fn len(&self) -> usize {
        self.chain.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chain.is_empty()
    }

    /// What the index still says about a record that is gone: its order, if it had one.
    fn order_of_missing(&self, seq: u64) -> Result<Option<OrderId>, StoreError> {
        for k in self.index.scan_prefix([b'o', 0]).keys() {
            let k = k?;
            let n = k.len();
            if n >= 11 && k.get(n - 8..) == Some(&seq.to_be_bytes()[..]) {
                let id = String::from_utf8_lossy(k.get(2..n - 9).unwrap_or_default());
                return Ok(Some(OrderId::new(id.to_uppercase())));
            }
        }
        Ok(None)
    }

    /// Walks the whole chain from the first record and says where it breaks, if anywhere: a
    /// record whose bytes do not hash to its hash (edited), one whose link to the previous
    /// record does not match (the previous one was rewritten with a fresh hash), a gap in the
    /// sequence numbers or a head past the last record (deleted), a record under another
    /// number than its own (reordered). The walk goes on after a break, so one edit is one
    /// finding, not every record after it.
    pub fn verify(&self) -> Result<ChainReport, StoreError> {
        self.verify_from(ChainWalk::default())
            .map(|(report, _)| report)
    }

    /// `verify`, going on from where an earlier walk stopped: only the records after its last
    /// are read (the head is checked again). For a reader in the process that writes the trail:
    /// sled's lock keeps every other process out, and this program only appends, so the records
    /// an earlier walk read are still those bytes. Returns the report and the walk to go on from.
    pub fn verify_from(&self, walk: ChainWalk) -> Result<(ChainReport, ChainWalk), StoreError> {
        let ChainWalk {
            mut report,
            mut expected,
            mut prev,
            mut last_seq,
            mut last_hash,
            mut last_at,
            mut open_gap,
        } = walk;
        // A first walk reads every key, odd ones included (they are findings); a later one
        // starts at the record after the last it read.
        let from = if last_seq == 0 {
            Vec::new()
        } else {
            expected.to_be_bytes().to_vec()
        };
        for item in self.chain.range(from..) {
            let (k, v) = item?;
            let Ok(key) = <[u8; 8]>::try_from(&k[..]) else {
                report.breaks.push(ChainBreak {
                    written_after: None,
                    written_before: None,
                    kind: BreakKind::Unreadable,
                    seq: expected,
                    last_seq: expected,
                    at: None,
                    order_id: None,
                    detail: format!("a key of {} bytes is not a sequence number", k.len()),
                });
                continue;
            };
            let key = u64::from_be_bytes(key);
            if key > expected {
                let mut b = ChainBreak {
                    written_after: None,
                    written_before: None,
                    kind: BreakKind::Deleted,
                    seq: expected,
                    last_seq: key - 1,
                    at: None,
                    order_id: None,
                    detail: format!(
                        "record(s) #{expected}..=#{} are missing between #{} and #{key}",
                        key - 1,
                        expected - 1
                    ),
                };
                if expected == key - 1 {
                    b.detail = format!(
                        "record #{expected} is missing between #{} and #{key}",
                        expected - 1
                    );
                    b.order_id = self.order_of_missing(expected)?;
                }
                b.written_after = last_at;
                open_gap = Some(report.breaks.len());
                report.breaks.push(b);
                // The record after a gap cannot link to what is gone; that is the same finding.
                prev = None;
            }
            expected = key + 1;
            report.count += 1;
            last_seq = key;
            let Some(env) = open_envelope(&v) else {
                report.breaks.push(ChainBreak {
                    written_after: None,
                    written_before: None,
                    kind: BreakKind::Unreadable,
                    seq: key,
                    last_seq: key,
                    at: None,
                    order_id: None,
                    detail: format!("record #{key} is {} bytes, too short to be one", v.len()),
                });
                prev = None;
                continue;
            };
            let rec = decode(env.body).ok();
            let (at, order_id) = rec
                .as_ref()
                .map_or((None, None), |r| (Some(r.at), r.order_id.clone()));
            if let Some(b) = open_gap.take().and_then(|i| report.breaks.get_mut(i)) {
                b.written_before = at;
            }
            last_at = at.or(last_at);
            last_hash = env.hash;
            if env.seq != key {
                report.breaks.push(ChainBreak {
                    written_after: None,
                    written_before: None,
                    kind: BreakKind::Reordered,
                    seq: key,
                    last_seq: key,
                    at,
                    order_id,
                    detail: format!("the record stored as #{key} was written as #{}", env.seq),
                });
                // The record after a moved one links to what used to be here: the same finding.
                prev = None;
                continue;
            }
            if chain_hash(env.seq, &env.prev, env.body) != env.hash {
                report.breaks.push(ChainBreak {
                    written_after: None,
                    written_before: None,
                    kind: BreakKind::Edited,
                    seq: key,
                    last_seq: key,
                    at,
                    order_id,
                    detail: format!(
                        "record #{key}'s bytes do not hash to the hash written with it"
                    ),
                });
            } else if let Some(p) = prev.filter(|p| *p != env.prev) {
                // This record is intact, but the one before it is not the one it was chained
                // to: that one was rewritten and given a fresh hash.
                let before = self.get(key.saturating_sub(1)).ok().flatten();
                report.breaks.push(ChainBreak {
                    written_after: None,
                    written_before: None,
                    kind: BreakKind::Edited,
                    seq: key.saturating_sub(1),
                    last_seq: key.saturating_sub(1),
                    at: before.as_ref().map(|c| c.record.at),
                    order_id: before.and_then(|c| c.record.order_id),
                    detail: format!(
                        "record #{key} was chained to a record with hash {}, but #{} now has hash {}: #{} was rewritten",
                        hex::encode(env.prev),
                        key.saturating_sub(1),
                        hex::encode(p),
                        key.saturating_sub(1),
                    ),
                });
            } else if rec.is_none() {
                report.breaks.push(ChainBreak {
                    written_after: None,
                    written_before: None,
                    kind: BreakKind::Unreadable,
                    seq: key,
                    last_seq: key,
                    at: None,
                    order_id: None,
                    detail: format!("record #{key} hashes right but is not a readable record"),
                });
            }
            prev = Some(env.hash);
        }
        let walk = ChainWalk {
            report: report.clone(),
            expected,
            prev,
            last_seq,
            last_hash,
            last_at,
            open_gap,
        };
        let (head_seq, head_hash) = read_head(self.head.get(HEAD_KEY)?.as_deref())?;
        if head_seq > last_seq {
            let mut b = ChainBreak {
                written_after: None,
                written_before: None,
                kind: BreakKind::Deleted,
                seq: last_seq + 1,
                last_seq: head_seq,
                at: None,
                order_id: None,
                detail: format!(
                    "the newest record(s) #{}..=#{head_seq} are missing (the head says #{head_seq})",
                    last_seq + 1
                ),
            };
            b.written_after = last_at;
            if head_seq == last_seq + 1 {
                b.detail = format!("the newest record #{head_seq} is missing (the head names it)");
                b.order_id = self.order_of_missing(head_seq)?;
            }
            report.breaks.push(b);
        } else if head_seq < last_seq {
            report.breaks.push(ChainBreak {
                written_after: None,
                written_before: None,
                kind: BreakKind::Reordered,
                seq: head_seq + 1,
                last_seq,
                at: None,
                order_id: None,
                detail: format!(
                    "records #{}..=#{last_seq} were added after the head (#{head_seq}), not by this program",
                    head_seq + 1
                ),
            });
        } else if last_seq > 0 && head_hash != last_hash {
            let last = self.get(last_seq).ok().flatten();
            report.breaks.push(ChainBreak {
                written_after: None,
                written_before: None,
                kind: BreakKind::Edited,
                seq: last_seq,
                last_seq,
                at: last.as_ref().map(|c| c.record.at),
                order_id: last.and_then(|c| c.record.order_id),
                detail: format!(
                    "the newest record #{last_seq} was rewritten (its hash is not the one the head recorded)"
                ),
            });
        }
        if last_seq > 0 {
            report.head_seq = Some(head_seq.max(last_seq));
            report.head_hash = Some(hex::encode(if head_seq >= last_seq {
                head_hash
            } else {
                last_hash
            }));
        }
        report.breaks.sort_by_key(|b| b.seq);
        Ok((report, walk))
    }
}

/// Where a walk of the chain stands after the last record it read (see `Audit::verify_from`).
#[derive(Clone, Debug)]
pub struct ChainWalk {
    /// What the records read so far showed (the head not yet compared).
    report: ChainReport,
    /// The sequence number the next record should have.
    expected: u64,
    /// The previous record's stored hash (None: unreadable or missing).
    prev: Option<[u8; 32]>,
    last_seq: u64,
    last_hash: [u8; 32],
    /// The time of the last readable record, and the gap found just before the next record:
    /// a deleted record was written between its neighbours.
    last_at: Option<Timestamp>,
    open_gap: Option<usize>,
}

impl Default for ChainWalk {
    fn default() -> Self {
        Self {
            report: ChainReport::default(),
            expected: 1,
            prev: Some(ZERO),
            last_seq: 0,
            last_hash: ZERO,
            last_at: None,
            open_gap: None,
        }
    }
}
