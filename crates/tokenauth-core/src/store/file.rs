use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};

use super::memory::{bounded, deadline_after, lease_live};
use super::{
    Backoff, CasOutcome, Lease, LeaseOutcome, Publication, SharedState, SharedToken, StoreError,
    StoreKey, TokenStore, WaitOutcome, from_unix_millis as from_ms, same_refresh_token,
    unix_millis as to_ms,
};

/// A temporary file older than this is one whose writer died (a write takes
/// milliseconds), so the first operation of a store removes it.
const STALE_TEMP_AGE: Duration = Duration::from_secs(60);

/// A token file larger than this is not one the store wrote.
const MAX_FILE_LEN: u64 = 1 << 20;

/// How often [`TokenStore::wait`] reads the file again: files have no
/// notification that works across processes everywhere.
const WAIT_POLL: Duration = Duration::from_millis(20);

/// Keeps token state in files, one per (provider, connection), in one
/// directory, shared safely by the processes of one machine.
///
/// - File names are `rt-<hash>.json`, the key's [`StoreKey::digest`] (a
///   128-bit FNV-1a hash of the provider and connection ids): no secret (and
///   no id) in a file name.
/// - Each file holds a JSON object: `provider`, `connection` and
///   `refresh_token` (a file with just these three, written by hand, is
///   valid), plus what the store protocol adds: the published `token` and
///   `backoff`, their `version`, the `lease` (owner, fencing number,
///   deadline) and the last fencing number `fence`. A file whose ids do not
///   match the key (a hash collision) is treated as absent.
/// - Every change (lease, publish, refresh-token compare-and-set) holds an
///   exclusive advisory lock (`flock`) on the key's lock file
///   `rt-<hash>.lock` while it reads, checks and writes, so changes from
///   several processes never interleave; reads take no lock (writes are
///   atomic). The lock is Linux-only (`flock` through rustix); elsewhere a
///   directory must not be shared by processes that fetch concurrently.
/// - Lease deadlines are wall-clock times in the file, so the processes that
///   share a directory must share a clock: one machine.
/// - [`wait`](TokenStore::wait) reads the file every 20 ms.
/// - Writes are atomic and durable: a temporary file `.tmp-rt-<hash>.json-<random>`
///   in the same directory, flushed to disk, renamed over the old one, and
///   then (on Unix) the directory itself is flushed, so a reader never sees
///   half a token and a crash after a write returns never loses the new one.
///   A removed refresh token is removed from the file, which stays: its
///   fencing number must keep growing.
/// - A writer killed mid-write leaves its temporary file behind. The first
///   operation of a `FileStore` removes such files when they are older than
///   a minute (a live writer's file is milliseconds old; a writer stopped
///   for longer than that between writing and renaming gets an error from
///   that write); nothing else in the directory is touched, and symbolic
///   links are never followed.
/// - Only regular files are read. A FIFO, socket, device, directory or
///   symbolic link at a token file's path is refused with an error that names
///   the path (on Linux it is opened non-blocking and without following
///   links, and checked after opening, so it can never block a `read`).
/// - On Unix the directory is created `0700` and files are `0600`.
#[derive(Clone, Debug)]
pub struct FileStore {
    dir: PathBuf,
    /// Set once the stale temporary files have been looked for; shared by
    /// clones.
    swept: Arc<AtomicBool>,
}

impl FileStore {
    /// A store in `dir`, created (with parents) on first write. Does no I/O:
    /// stale temporary files are removed on the first operation.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileStore {
            dir: dir.into(),
            swept: Arc::default(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds `key`'s refresh token and state.
    pub fn path_for(&self, key: &StoreKey<'_>) -> PathBuf {
        self.dir.join(file_name(key))
    }

    /// Runs `op` on a blocking thread, after the sweep of stale temporary
    /// files if this is the store's first operation.
    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let sweep = (!self.swept.swap(true, Ordering::AcqRel)).then(|| self.dir.clone());
        let result = tokio::task::spawn_blocking(move || {
            if let Some(dir) = sweep {
                sweep_stale_temp_files(&dir, SystemTime::now());
            }
            op()
        })
        .await
        .map_err(|e| io::Error::other(format!("file store task failed: {e}")));
        Ok(result??)
    }

    /// `key`'s record, if there is one.
    async fn record(&self, key: &StoreKey<'_>) -> Result<Option<Record>, StoreError> {
        let path = self.path_for(key);
        let (p, c) = (key.provider.to_owned(), key.connection.to_owned());
        self.run(move || read(&path, (&p, &c))).await
    }

    /// Runs `change` on `key`'s record (an empty one if there is none) under
    /// the key's lock, and writes the record back when `change` says it
    /// changed it (the first element of what it returns).
    async fn update<T: Send + 'static>(
        &self,
        key: &StoreKey<'_>,
        change: impl FnOnce(&mut Record, SystemTime) -> (bool, T) + Send + 'static,
    ) -> Result<T, StoreError> {
        let (dir, name, lock) = (self.dir.clone(), file_name(key), lock_name(key));
        let (p, c) = (key.provider.to_owned(), key.connection.to_owned());
        self.run(move || {
            create_dir(&dir)?;
            let _guard = lock_exclusive(&dir.join(lock))?;
            let mut record = match read(&dir.join(&name), (&p, &c)) {
                Ok(record) => record.unwrap_or_else(|| Record::new((&p, &c))),
                // Nothing in it can be read, so nothing is lost by replacing it.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    tracing::warn!(error = %e, "replacing a token store file that is not one the store wrote");
                    Record::new((&p, &c))
                }
                Err(e) => return Err(e),
            };
            let (changed, out) = change(&mut record, SystemTime::now());
            if changed {
                write(&dir, &name, &record)?;
            }
            Ok(out)
        })
        .await
    }
}

fn file_name(key: &StoreKey<'_>) -> String {
    format!("rt-{}.json", key.digest())
}

fn lock_name(key: &StoreKey<'_>) -> String {
    format!("rt-{}.lock", key.digest())
}

/// The temporary file a write of `name` goes through.
fn temp_name(name: &str) -> String {
    format!(".tmp-{name}-{:016x}", fastrand::u64(..))
}

/// True for exactly the names [`temp_name`] makes of [`file_name`]s.
fn is_temp_name(name: &str) -> bool {
    let hex = |b: &[u8]| {
        b.iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    };
    let Some(rest) = name.strip_prefix(".tmp-rt-") else {
        return false;
    };
    let b = rest.as_bytes();
    b.len() == 32 + ".json-".len() + 16 && hex(&b[..32]) && &b[32..38] == b".json-" && hex(&b[38..])
}

/// Removes this store's temporary files (and nothing else) older than
/// [`STALE_TEMP_AGE`] from `dir`. Best effort: a failure is logged, and the
/// operation that triggered the sweep goes on.
fn sweep_stale_temp_files(dir: &Path, now: SystemTime) -> usize {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return 0,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot look for stale temporary files in the token store directory");
            return 0;
        }
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_temp_name) {
            continue;
        }
        let path = entry.path();
        // lstat: a symbolic link is not followed (and is not ours).
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let stale = meta.file_type().is_file()
            && meta
                .modified()
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age >= STALE_TEMP_AGE));
        if !stale {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot remove a stale temporary file from the token store directory");
            }
        }
    }
    if removed > 0 {
        tracing::info!(dir = %dir.display(), removed, "removed temporary files left in the token store directory by an interrupted write");
    }
    removed
}

/// One key's file. Times are milliseconds since the Unix epoch.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Record {
    provider: String,
    connection: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<TokenRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backoff: Option<BackoffRecord>,
    #[serde(default, skip_serializing_if = "is_zero")]
    version: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    fence: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease: Option<LeaseRecord>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TokenRecord {
    access: String,
    expires_at_ms: u64,
    /// Absent in files written before it existed: the expiry then.
    #[serde(default)]
    renew_at_ms: Option<u64>,
    /// The API base the token is bound to (`response.api_base`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_base: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct BackoffRecord {
    until_ms: u64,
    attempts: u32,
    reason: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LeaseRecord {
    owner: String,
    fence: u64,
    deadline_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Record {
    fn new(key: (&str, &str)) -> Self {
        Record {
            provider: key.0.to_owned(),
            connection: key.1.to_owned(),
            ..Record::default()
        }
    }

    fn state(&self) -> SharedState {
        SharedState {
            token: self.token.as_ref().map(|t| SharedToken {
                access: SecretString::from(t.access.clone()),
                expires_at: from_ms(t.expires_at_ms),
                renew_at: from_ms(t.renew_at_ms.unwrap_or(t.expires_at_ms)),
                api_base: t.api_base.clone(),
            }),
            refresh_token: self.refresh_token.clone().map(SecretString::from),
            backoff: self.backoff.as_ref().map(|b| Backoff {
                until: from_ms(b.until_ms),
                attempts: b.attempts,
                reason: b.reason.clone(),
            }),
            version: self.version,
        }
    }

    fn refresh_token(&self) -> Option<SecretString> {
        self.refresh_token.clone().map(SecretString::from)
    }

    /// The live lease, if any at `now`.
    fn live_lease(&self, now: SystemTime) -> Option<&LeaseRecord> {
        self.lease
            .as_ref()
            .filter(|held| lease_live(from_ms(held.deadline_ms), now))
    }

    /// True when `lease` is this record's live lease at `now`.
    fn holds(&self, lease: &Lease, now: SystemTime) -> bool {
        self.live_lease(now)
            .is_some_and(|held| held.owner == lease.owner() && held.fence == lease.fence())
    }
}

/// The record in `path`, if it is `key`'s.
fn read(path: &Path, key: (&str, &str)) -> io::Result<Option<Record>> {
    let Some(file) = open_regular(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| with_path(path, "cannot read", e))?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is larger than {} KiB, so it is not a tokenauth refresh-token file: delete it",
                path.display(),
                MAX_FILE_LEN / 1024
            ),
        ));
    }
    let record: Record = serde_json::from_slice(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is not a tokenauth refresh-token file ({}): delete it",
                path.display(),
                e.classify_name()
            ),
        )
    })?;
    if record.provider != key.0 || record.connection != key.1 {
        return Ok(None);
    }
    Ok(Some(record))
}

/// Opens the regular file at `path` for reading; `None` when there is none.
/// Anything else there (FIFO, socket, device, directory, symbolic link) is an
/// error, found out without blocking: the path is checked before opening (so
/// a device is never opened), opened without following a link and, on Linux,
/// without blocking, and what was opened is checked again (the path may have
/// been replaced in between).
fn open_regular(path: &Path) -> io::Result<Option<fs::File>> {
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => return Err(not_regular(path, meta.file_type())),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(with_path(path, "cannot read", e)),
    }
    let file = match open_no_follow(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            // O_NOFOLLOW refuses a link that replaced the file since the check.
            return Err(match fs::symlink_metadata(path) {
                Ok(meta) if !meta.file_type().is_file() => not_regular(path, meta.file_type()),
                _ => with_path(path, "cannot open", e),
            });
        }
    };
    let meta = file
        .metadata()
        .map_err(|e| with_path(path, "cannot read", e))?;
    if !meta.file_type().is_file() {
        return Err(not_regular(path, meta.file_type()));
    }
    Ok(Some(file))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn open_no_follow(path: &Path) -> io::Result<fs::File> {
    use rustix::fs::{Mode, OFlags};
    let flags =
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC;
    Ok(fs::File::from(rustix::fs::open(
        path,
        flags,
        Mode::empty(),
    )?))
}

/// Elsewhere the path is checked before opening (see [`open_regular`]); a
/// FIFO swapped in between the check and the open could still block.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn open_no_follow(path: &Path) -> io::Result<fs::File> {
    fs::File::open(path)
}

fn not_regular(path: &Path, file_type: fs::FileType) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} is {}, not a regular file, so it is not a tokenauth refresh-token file: remove it (the next login or refresh writes a new one)",
            path.display(),
            describe(file_type)
        ),
    )
}

fn describe(t: fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link (the store does not follow links)"
    } else {
        "a special file"
    }
}

fn with_path(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "unexpected fields",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

fn write(dir: &Path, name: &str, record: &Record) -> io::Result<()> {
    create_dir(dir)?;
    let body = serde_json::to_vec(record).map_err(io::Error::other)?;
    let path = dir.join(name);
    let tmp = dir.join(temp_name(name));
    let result = (|| {
        let mut file = open_private(&tmp)?;
        file.write_all(&body)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(with_path(&path, "cannot write", e));
    }
    // The rename is durable only once the directory is.
    sync_dir(dir)
}

/// Takes the exclusive advisory lock on the lock file at `path` (created
/// `0600` if missing, never through a symbolic link), blocking until it is
/// free. Released when the returned file is closed.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn lock_exclusive(path: &Path) -> io::Result<fs::File> {
    use rustix::fs::{FlockOperation, Mode, OFlags};
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC;
    let lock = rustix::fs::open(path, flags, Mode::from_raw_mode(0o600))
        .map_err(|e| with_path(path, "cannot open the lock file", e.into()))?;
    rustix::fs::flock(&lock, FlockOperation::LockExclusive)
        .map_err(|e| with_path(path, "cannot lock", e.into()))?;
    Ok(fs::File::from(lock))
}

/// Without `flock`, changes from one process are still serialised by the
/// store's callers; see [`FileStore`] for what that means.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn lock_exclusive(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// Flushes `dir`'s entries (a rename or removal in it) to disk.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| with_path(dir, "cannot flush the directory", e))
}

/// Windows has no directory handle to flush; NTFS journals the rename.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Creates `dir` (and missing parents) `0700`; a directory it creates is made
/// durable in its parent, so the first token saved does not vanish with it.
#[cfg(unix)]
fn create_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

#[cfg(not(unix))]
fn create_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn open_private(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[async_trait::async_trait]
impl TokenStore for FileStore {
    async fn read(&self, key: &StoreKey<'_>) -> Result<SharedState, StoreError> {
        Ok(self
            .record(key)
            .await?
            .map(|r| r.state())
            .unwrap_or_default())
    }

    async fn try_lease(
        &self,
        key: &StoreKey<'_>,
        owner: &str,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        let owned_key = (key.provider.to_owned(), key.connection.to_owned());
        let owner = owner.to_owned();
        self.update(key, move |record, now| {
            if let Some(held) = record.live_lease(now) {
                let until = from_ms(held.deadline_ms);
                return (false, LeaseOutcome::Held { until });
            }
            // A version above the counter (the counter was lost) still
            // yields a fence that can publish.
            record.fence = record.fence.max(record.version).saturating_add(1);
            let deadline = deadline_after(now, ttl);
            record.lease = Some(LeaseRecord {
                owner: owner.clone(),
                fence: record.fence,
                deadline_ms: to_ms(deadline),
            });
            let key = StoreKey {
                provider: &owned_key.0,
                connection: &owned_key.1,
            };
            let lease = Lease::new(&key, &owner, record.fence, from_ms(to_ms(deadline)));
            (true, LeaseOutcome::Acquired(lease))
        })
        .await
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<Option<SystemTime>, StoreError> {
        let leased = lease.clone();
        self.update(&lease.key(), move |record, now| {
            if !record.holds(&leased, now) {
                return (false, None);
            }
            let deadline = deadline_after(now, ttl);
            if let Some(held) = &mut record.lease {
                held.deadline_ms = to_ms(deadline);
            }
            (true, Some(from_ms(to_ms(deadline))))
        })
        .await
    }

    async fn release(&self, lease: &Lease) -> Result<bool, StoreError> {
        let leased = lease.clone();
        self.update(&lease.key(), move |record, now| {
            // Past its deadline the lease is no longer the caller's (Redis
            // drops it then), so releasing it says false, as renewing does.
            let live = record.holds(&leased, now);
            if live {
                record.lease = None;
            }
            (live, live)
        })
        .await
    }

    async fn publish(&self, lease: &Lease, publication: &Publication) -> Result<bool, StoreError> {
        let leased = lease.clone();
        let token = publication.token.as_ref().map(|t| TokenRecord {
            access: t.access.expose_secret().to_owned(),
            expires_at_ms: to_ms(t.expires_at),
            renew_at_ms: Some(to_ms(t.renew_at)),
            api_base: t.api_base.clone(),
        });
        let backoff = publication.backoff.as_ref().map(|b| {
            let b = bounded(b);
            BackoffRecord {
                until_ms: to_ms(b.until),
                attempts: b.attempts,
                reason: b.reason,
            }
        });
        self.update(&lease.key(), move |record, now| {
            if !record.holds(&leased, now) || record.version >= leased.fence() {
                return (false, false);
            }
            record.token = token;
            record.backoff = backoff;
            record.version = leased.fence();
            (true, true)
        })
        .await
    }

    async fn cas_refresh(
        &self,
        key: &StoreKey<'_>,
        used: Option<&SecretString>,
        new: Option<&SecretString>,
    ) -> Result<CasOutcome, StoreError> {
        let used = used.cloned();
        let new = new.map(|t| t.expose_secret().to_owned());
        self.update(key, move |record, _now| {
            let current = record.refresh_token();
            if !same_refresh_token(current.as_ref(), used.as_ref()) {
                return (false, CasOutcome::Conflict { current });
            }
            record.refresh_token = new;
            (true, CasOutcome::Written)
        })
        .await
    }

    async fn wait(
        &self,
        key: &StoreKey<'_>,
        seen: u64,
        timeout: Duration,
    ) -> Result<WaitOutcome, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let record = self.record(key).await?;
            let now = SystemTime::now();
            match &record {
                Some(r) if r.version > seen => return Ok(WaitOutcome::Published(r.state())),
                Some(r) if r.live_lease(now).is_some() => {}
                _ => return Ok(WaitOutcome::LeaseFree),
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(WaitOutcome::TimedOut);
            }
            tokio::time::sleep(left.min(WAIT_POLL)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: StoreKey<'static> = StoreKey {
        provider: "twoba",
        connection: "tenant-42",
    };

    /// A fresh, empty directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tokenauth-store-{}-{name}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn touch(path: &Path, age: Duration) {
        let file = fs::File::create(path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    /// `read`, failing (instead of hanging the test) if it blocks.
    async fn load_promptly(store: &FileStore, unblock: &Path) -> Result<SharedState, StoreError> {
        match tokio::time::timeout(Duration::from_secs(10), store.read(&KEY)).await {
            Ok(result) => result,
            Err(_) => {
                // Give the blocked reader a writer so the runtime can shut down.
                let _ = fs::OpenOptions::new().write(true).open(unblock);
                panic!("load blocked on {}", unblock.display());
            }
        }
    }

    #[test]
    fn file_names_hide_ids_and_differ() {
        let store = FileStore::new("/tmp/x");
        let a = store.path_for(&StoreKey {
            provider: "twoba",
            connection: "secret-tenant",
        });
        let b = store.path_for(&StoreKey {
            provider: "twob",
            connection: "asecret-tenant",
        });
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("rt-") && !name.contains("twoba") && !name.contains("tenant"));
    }

    #[test]
    fn the_temp_pattern_is_exactly_what_writes_make() {
        let ours = temp_name(&file_name(&KEY));
        assert!(is_temp_name(&ours), "{ours}");
        let hash = KEY.digest();
        for foreign in [
            ".tmp-rt-".to_owned(),
            ".tmp-other-0123456789abcdef".to_owned(),
            format!("rt-{hash}.json"),
            format!(".tmp-rt-{hash}.json"),
            format!(".tmp-rt-{hash}.json-0123456789abcdeF"),
            format!(".tmp-rt-{hash}.json-0123456789abcdef0"),
            format!(".tmp-rt-{hash}.jsonx0123456789abcdef"),
            format!(".tmp-rt-{}.json-0123456789abcdef", "é".repeat(16)),
            format!(".tmp-rt-{}-0123456789abcdef", "é".repeat(19)),
        ] {
            assert!(!is_temp_name(&foreign), "{foreign}");
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn stale_temp_files_of_ours_are_removed_on_first_use_and_nothing_else() {
        let dir = scratch("sweep");
        let old = Duration::from_secs(3600);
        let name = file_name(&KEY);
        let stale = temp_name(&name);
        let fresh = temp_name(&name);
        touch(&dir.join(&stale), old);
        touch(&dir.join(&fresh), Duration::ZERO);
        // Foreign files, however old, stay.
        for foreign in [".tmp-other-0123456789abcdef", ".tmp-rt-notes", "notes.txt"] {
            touch(&dir.join(foreign), old);
        }
        // A link with our pattern to an old file elsewhere is not followed.
        let outside = scratch("sweep-outside").join("target");
        touch(&outside, old);
        let link = temp_name(&name);
        std::os::unix::fs::symlink(&outside, dir.join(&link)).unwrap();
        // A directory with our pattern is not a file we wrote.
        let subdir = temp_name(&name);
        fs::create_dir(dir.join(&subdir)).unwrap();

        let store = FileStore::new(&dir);
        assert!(store.read(&KEY).await.unwrap().refresh_token.is_none());
        let mut expected = vec![
            fresh.clone(),
            link,
            subdir,
            ".tmp-other-0123456789abcdef".to_owned(),
            ".tmp-rt-notes".to_owned(),
            "notes.txt".to_owned(),
        ];
        expected.sort();
        assert_eq!(names(&dir), expected, "only {stale} goes");
        assert!(outside.exists());

        // Once per store (and its clones): a later operation does not sweep.
        let later = temp_name(&name);
        touch(&dir.join(&later), old);
        store.clone().read(&KEY).await.unwrap();
        assert!(dir.join(&later).exists());
        // A new store (a restarted process) does.
        FileStore::new(&dir).read(&KEY).await.unwrap();
        assert!(!dir.join(&later).exists());

        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(outside.parent().unwrap());
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[tokio::test]
    async fn a_fifo_at_the_path_is_refused_without_blocking() {
        let dir = scratch("fifo");
        let store = FileStore::new(&dir);
        let path = store.path_for(&KEY);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let err = load_promptly(&store, &path).await.unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&path.display().to_string())
                && message.contains("FIFO")
                && message.contains("remove it"),
            "{message}"
        );
        // Storing a refresh token replaces it with a regular file again.
        let rt = SecretString::from("rt-1");
        assert!(matches!(
            store.cas_refresh(&KEY, None, Some(&rt)).await.unwrap(),
            CasOutcome::Written
        ));
        let state = store.read(&KEY).await.unwrap();
        assert_eq!(state.refresh_token.unwrap().expose_secret(), "rt-1");
        let _ = fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn other_non_regular_files_are_refused() {
        let dir = scratch("special");
        let store = FileStore::new(&dir);
        let path = store.path_for(&KEY);

        fs::create_dir(&path).unwrap();
        let err = store.read(&KEY).await.unwrap_err().to_string();
        assert!(
            err.contains("is a directory") && err.contains("remove it"),
            "{err}"
        );
        fs::remove_dir(&path).unwrap();

        let socket = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let err = load_promptly(&store, &path).await.unwrap_err().to_string();
        assert!(err.contains("is a socket"), "{err}");
        drop(socket);
        fs::remove_file(&path).unwrap();

        // A link to a valid token file elsewhere is not followed.
        let elsewhere = FileStore::new(scratch("special-elsewhere"));
        let stored = elsewhere
            .cas_refresh(&KEY, None, Some(&SecretString::from("rt-elsewhere")))
            .await
            .unwrap();
        assert!(matches!(stored, CasOutcome::Written));
        std::os::unix::fs::symlink(elsewhere.path_for(&KEY), &path).unwrap();
        let err = store.read(&KEY).await.unwrap_err().to_string();
        assert!(
            err.contains("symbolic link") && err.contains(&path.display().to_string()),
            "{err}"
        );
        assert!(!err.contains("rt-elsewhere"), "{err}");
        fs::remove_file(&path).unwrap();

        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        let err = load_promptly(&store, &path).await.unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");

        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(elsewhere.dir());
    }

    #[tokio::test]
    async fn an_oversized_file_is_refused() {
        let dir = scratch("huge");
        let store = FileStore::new(&dir);
        fs::write(store.path_for(&KEY), vec![b' '; MAX_FILE_LEN as usize + 1]).unwrap();
        let err = store.read(&KEY).await.unwrap_err().to_string();
        assert!(
            err.contains("larger than 1024 KiB") && err.contains("delete it"),
            "{err}"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
