//! sled storage behind small typed functions: the persistence of the domain's vocabulary
//! (orders, jobs, audit records, dialogs, the JumpServer inventory), never its owner. The
//! workflow reaches it only through its store ports (`workflow::ports`), which `app::sled_store`
//! implements with the types here; tests and the demo may open the trees directly.
//!
//! Trees (one per concern; keys are UTF-8 strings, values JSON unless noted):
//! - `dedupe`: delivery keys of DingTalk events already handled, with their expiry (see dedupe.rs)
//! - `signatures`: robot / card signature headers and the body each authenticated, until the
//!   timestamp goes stale, so captured headers cannot carry another body (dedupe.rs)
//! - `orders`, `orders_by_requester`, `orders_by_state`, `order_refs`, `order_seq`: orders and
//!   their indexes; every change is one CAS transaction with its outbox jobs and audit (orders.rs)
//! - `outbox`: work caused by committed decisions, removed when done (outbox.rs)
//! - `audit_chain`, `audit_head`, `audit_index`: the append-only, hash-chained audit trail and
//!   its indexes (audit.rs; the un-chained `audit`, `audit_by_order` of older versions are
//!   chained on open)
//! - `dialogs`: per-user multi-turn dialog state with last activity (dialogs.rs)
//! - `meta`: facts about the store itself; `installation_id` is made once, when the store is
//!   created, and names this installation in everything it writes to JumpServer
//! - `index_meta`: which generation of the JumpServer index `/sync` builds is current. The
//!   generations themselves are databases of their own under `<path>/index/<generation>/`
//!   (index.rs); the `index_*` data trees older versions kept here are dropped by the second
//!   sync after an upgrade
//! - `console_sessions`: logins to the access console, by the SHA-256 of their id (sessions.rs)
pub mod audit;
pub mod dedupe;
pub mod dialogs;
pub mod index;
pub mod orders;
pub mod outbox;
pub mod sessions;

use crate::domain::ownership::InstallationId;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("the data directory {path} is in use by another accessbot process (sled holds a lock on it); stop that process or choose another [storage] path")]
    Locked { path: PathBuf },
    #[error("cannot open the data directory {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("storage transaction aborted: {0}")]
    Conflict(String),
}

/// A failed transaction as a store error (its abort reason, or sled's own).
pub(crate) fn tx_error(e: sled::transaction::TransactionError<StoreError>) -> StoreError {
    match e {
        sled::transaction::TransactionError::Abort(e) => e,
        sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

/// The embedded database. Cheap to clone (sled handles are reference counted).
#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
    installation: InstallationId,
    side: Arc<SideDbs>,
    /// Which orders this process changed lately, shared by every `Orders` handle on this store
    /// (see `orders::OrderFeed`).
    order_feed: Arc<orders::OrderFeed>,
    /// The remembered delivery keys, loaded by the first `Dedupe` opened on this store and
    /// shared by every later one (see `dedupe`).
    dedupe_keys: Arc<Mutex<Option<Arc<dedupe::Keys>>>>,
}

/// The index's generation databases (`<path>/index/<generation>/`, see `store::index`), shared
/// by every clone of the store so two handles never open one directory twice (sled locks it).
///
/// Why a database per generation: sled never shrinks a live `Db`. A `/sync` writes a whole
/// generation (a million keys at 50k hosts) and sled kept ~130 MB of it resident for the life of
/// the process; closing the database the writer used and reopening it for reads hands all of
/// that back, and a superseded generation is deleted as a directory instead of key by key.
#[derive(Debug)]
struct SideDbs {
    /// `None` for a temporary store: its generations are temporary databases that vanish when
    /// closed, so they are kept open (`kept`) until removed.
    root: Option<PathBuf>,
    cache_bytes: u64,
    open: Mutex<OpenGenerations>,
}

#[derive(Debug, Default)]
struct OpenGenerations {
    /// Every generation database open now, so a second reader shares the first one's handle.
    live: HashMap<u64, Weak<sled::Db>>,
    /// The newest generation read: kept open between queries (reopening costs a log scan).
    pinned: Option<(u64, Arc<sled::Db>)>,
    /// Temporary stores only: every generation, until removed.
    kept: HashMap<u64, Arc<sled::Db>>,
}

/// The directory name of a generation's database.
fn generation_dir(generation: u64) -> String {
    format!("{generation:020}")
}

const META_TREE: &str = "meta";
const INSTALLATION_KEY: &[u8] = b"installation_id";

/// The store's installation id: read, or made and stored on first open. The compare-and-swap
/// keeps two racing openers (only possible in tests, sled locks the directory) on one id.
fn installation_of(db: &sled::Db) -> Result<InstallationId, StoreError> {
    let meta = db.open_tree(META_TREE)?;
    let fresh = InstallationId::generate();
    let stored = match meta.compare_and_swap(
        INSTALLATION_KEY,
        None as Option<&[u8]>,
        Some(fresh.as_str().as_bytes()),
    )? {
        Ok(()) => {
            meta.flush()?;
            return Ok(fresh);
        }
        Err(e) => e.current.unwrap_or_default(),
    };
    let s = String::from_utf8_lossy(&stored);
    InstallationId::parse(&s)
        .ok_or_else(|| StoreError::Corrupt(format!("meta/installation_id is {s:?}")))
}

/// What the log says when a torn snapshot is removed (the fault script counts these lines).
pub const TORN_SNAPSHOT_CLEARED: &str =
    "removed a snapshot file left half-written by an earlier crash";

/// Removes the snapshot files a kill left half-written, before sled reads the directory.
///
/// sled 0.34.7 writes each snapshot (one on every open that finds new log entries) to
/// `snap.<lsn>.generating`, syncs it and renames it to `snap.<lsn>`. A process killed before the
/// rename leaves the `.generating` file, and sled's own recovery then takes it for the newest
/// snapshot (it only skips `.in___motion` files), finds it empty or cut short, and refuses to
/// open the database, on this and every later start (upstream spacejam/sled#1527, unfixed).
/// Such a file was never part of the database: the previous snapshot and the log are intact,
/// and sled rebuilds the same snapshot from them. Done only while holding sled's own lock (an
/// exclusive flock on `<path>/db`), so the file of a live process writing its snapshot right
/// now is never touched; failures are logged and left to sled's open to report.
fn clear_torn_snapshots(path: &Path) {
    let Ok(db) = std::fs::OpenOptions::new()
        .write(true)
        .open(path.join("db"))
    else {
        return; // a new directory: nothing torn yet
    };
    if db.try_lock().is_err() {
        return; // in use: sled's open says so (`StoreError::Locked`)
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::warn!(file = %entry.path().display(), "{TORN_SNAPSHOT_CLEARED}"),
                Err(e) => tracing::warn!(
                    file = %entry.path().display(),
                    error = %e,
                    "cannot remove a snapshot file left half-written by an earlier crash"
                ),
            }
        }
    }
    // The lock goes with `db`; sled takes its own next.
}

/// sled's page cache unless configured (`storage.cache_capacity_mb`): 8 MiB. sled's own
/// default, 1 GiB, is what a large `/sync` grew the process to; sled holds well beyond this
/// bound while it writes, and with 64 MiB the 50k-host sync peaked at 276 MB, with 8 at 145 MB,
/// with point reads no slower (docs/benchmarks.md, "`/sync` at scale").
pub const DEFAULT_CACHE_BYTES: u64 = 8 * 1024 * 1024;

impl Store {
    /// Opens (or creates) the database at `path`. A second process on the same path gets
    /// `StoreError::Locked` with a message that says what to do, not sled's raw io error.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// `open` with sled's page cache bounded to `cache_bytes` (`storage.cache_capacity_mb`).
    pub fn open_with_cache(path: impl AsRef<Path>, cache_bytes: u64) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let db = open_sled(path, cache_bytes)?;
        // Wall-clock time on purpose: it dates the one-off migration record, the moment this
        // process chained the older records (no injected clock reaches an open).
        audit::migrate(&db, jiff::Timestamp::now())?;
        Ok(Self {
            installation: installation_of(&db)?,
            db,
            side: Arc::new(SideDbs {
                root: Some(path.join("index")),
                cache_bytes,
                open: Mutex::default(),
            }),
            order_feed: Arc::default(),
            dedupe_keys: Arc::default(),
        })
    }

    /// A throwaway in-memory-like database in a temp dir, for tests and the demo.
    pub fn temporary() -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(DEFAULT_CACHE_BYTES)
            .open()?;
        Ok(Self {
            installation: installation_of(&db)?,
            db,
            side: Arc::new(SideDbs {
                root: None,
                cache_bytes: DEFAULT_CACHE_BYTES,
                open: Mutex::default(),
            }),
            order_feed: Arc::default(),
            dedupe_keys: Arc::default(),
        })
    }

    /// This installation's id (see `domain::ownership`).
    pub fn installation_id(&self) -> &InstallationId {
        &self.installation
    }

    /// The feed of order changes every `Orders` handle on this store writes to.
    pub(crate) fn order_feed(&self) -> Arc<orders::OrderFeed> {
        self.order_feed.clone()
    }

    /// The delivery keys every `Dedupe` on this store shares, loaded by `load` the first time.
    pub(crate) fn dedupe_keys(
        &self,
        load: impl FnOnce() -> Result<dedupe::Keys, StoreError>,
    ) -> Result<Arc<dedupe::Keys>, StoreError> {
        let mut slot = self.dedupe_keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(keys) = slot.as_ref() {
            return Ok(keys.clone());
        }
        let keys = Arc::new(load()?);
        *slot = Some(keys.clone());
        Ok(keys)
    }

    pub fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(name)?)
    }

    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// A fresh, empty database for index generation `g`, for its writer (whatever a crashed
    /// writer left under that number is removed first). Not pinned: when the writer drops it,
    /// everything sled held for the write is freed.
    pub(crate) fn create_generation_db(&self, g: u64) -> Result<Arc<sled::Db>, StoreError> {
        let side = &self.side;
        let mut open = side.open.lock().unwrap_or_else(|e| e.into_inner());
        let db = match &side.root {
            None => {
                let db = Arc::new(
                    sled::Config::new()
                        .temporary(true)
                        .cache_capacity(side.cache_bytes)
                        .open()?,
                );
                open.kept.insert(g, db.clone());
                db
            }
            Some(root) => {
                let dir = root.join(generation_dir(g));
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(|e| StoreError::Sled(e.into()))?;
                }
                Arc::new(open_sled(&dir, side.cache_bytes)?)
            }
        };
        open.live.insert(g, Arc::downgrade(&db));
        Ok(db)
    }

    /// The database of an existing index generation, for reading: the open one if any, else
    /// opened (and kept open while it is the newest generation read). `Ok(None)` if it does not
    /// exist (removed, or never written).
    pub(crate) fn generation_db(&self, g: u64) -> Result<Option<Arc<sled::Db>>, StoreError> {
        let side = &self.side;
        let mut open = side.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((pg, db)) = &open.pinned {
            if *pg == g {
                return Ok(Some(db.clone()));
            }
        }
        let db = match open.live.get(&g).and_then(Weak::upgrade) {
            Some(db) => db,
            None => {
                let Some(root) = &side.root else {
                    return Ok(open.kept.get(&g).cloned());
                };
                let dir = root.join(generation_dir(g));
                if !dir.join("conf").exists() {
                    return Ok(None);
                }
                let db = Arc::new(open_sled(&dir, side.cache_bytes)?);
                open.live.insert(g, Arc::downgrade(&db));
                db
            }
        };
        if open.pinned.as_ref().is_none_or(|(pg, _)| *pg < g) {
            open.pinned = Some((g, db.clone()));
        }
        Ok(Some(db))
    }

    /// Deletes every index generation but `keep`. A reader still on a deleted one finishes on
    /// its open handle (the files go when it closes).
    pub(crate) fn remove_generations_except(&self, keep: &[u64]) -> Result<(), StoreError> {
        let side = &self.side;
        let mut open = side.open.lock().unwrap_or_else(|e| e.into_inner());
        open.kept.retain(|g, _| keep.contains(g));
        open.live
            .retain(|g, w| keep.contains(g) && w.strong_count() > 0);
        // Only the newest kept generation stays open between queries; a reader still on the
        // previous one reopens it, and the handle closes when that reader is done.
        let newest = keep.iter().max();
        if open.pinned.as_ref().is_some_and(|(g, _)| Some(g) != newest) {
            open.pinned = None;
        }
        let Some(root) = &side.root else {
            return Ok(());
        };
        for g in generations_on_disk(root)? {
            if !keep.contains(&g) {
                std::fs::remove_dir_all(root.join(generation_dir(g)))
                    .map_err(|e| StoreError::Sled(e.into()))?;
            }
        }
        Ok(())
    }

    /// The generations with a database on disk (temporary stores: the ones kept open).
    pub(crate) fn generation_dirs(&self) -> Result<Vec<u64>, StoreError> {
        let side = &self.side;
        match &side.root {
            Some(root) => generations_on_disk(root),
            None => {
                let open = side.open.lock().unwrap_or_else(|e| e.into_inner());
                Ok(open.kept.keys().copied().collect())
            }
        }
    }
}

/// The generation numbers with a directory under `root` (`<path>/index`).
fn generations_on_disk(root: &Path) -> Result<Vec<u64>, StoreError> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::Sled(e.into())),
    };
    Ok(entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect())
}

/// Opens (or creates) a sled database at `path`, the main one or a generation's: torn snapshots
/// cleared first, sled's lock error turned into `StoreError::Locked`. Reopening a directory this
/// process just closed can briefly fail with the lock still held while sled's background flusher
/// lets go; a short, bounded retry covers that (a second process keeps holding it and still
/// gets `Locked`).
fn open_sled(path: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let mut tries = 0;
    loop {
        clear_torn_snapshots(path);
        match sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()
        {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("lock") =>
            {
                if tries == 50 {
                    return Err(StoreError::Locked {
                        path: path.to_owned(),
                    });
                }
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(source) => {
                return Err(StoreError::Open {
                    path: path.to_owned(),
                    source,
                })
            }
        }
    }
}
