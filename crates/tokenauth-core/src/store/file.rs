use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};

use super::{StoreKey, TokenStore};

/// A temporary file older than this is one whose writer died (a write takes
/// milliseconds), so the first operation of a store removes it.
const STALE_TEMP_AGE: Duration = Duration::from_secs(60);

/// A token file larger than this is not one the store wrote.
const MAX_FILE_LEN: u64 = 1 << 20;

/// Keeps refresh tokens in files, one per (provider, connection), in one
/// directory.
///
/// - File names are `rt-<hash>.json`, a 128-bit FNV-1a hash of the provider
///   and connection ids: no secret (and no id) in a file name.
/// - Each file holds `{"provider", "connection", "refresh_token"}`; a file
///   whose ids do not match the key (a hash collision) is treated as absent.
/// - Writes are atomic and durable: a temporary file `.tmp-rt-<hash>.json-<random>`
///   in the same directory, flushed to disk, renamed over the old one, and
///   then (on Unix) the directory itself is flushed, so a reader never sees
///   half a token and a crash after `save` returns never loses the new one.
///   Removals flush the directory too.
/// - A writer killed mid-write leaves its temporary file behind. The first
///   operation of a `FileStore` removes such files when they are older than
///   a minute (a live writer's file is milliseconds old; a writer stopped
///   for longer than that between writing and renaming gets an error from
///   its `save`); nothing else in the directory is touched, and symbolic
///   links are never followed.
/// - Only regular files are read. A FIFO, socket, device, directory or
///   symbolic link at a token file's path is refused with an error that names
///   the path (on Linux it is opened non-blocking and without following
///   links, and checked after opening, so it can never block a `load`).
/// - On Unix the directory is created `0700` and files are `0600`.
#[derive(Clone, Debug)]
pub struct FileStore {
    dir: PathBuf,
    /// Set once the stale temporary files have been looked for; shared by
    /// clones.
    swept: Arc<AtomicBool>,
}

impl FileStore {
    /// A store in `dir`, created (with parents) on first save. Does no I/O:
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

    /// The file that holds `key`'s refresh token.
    pub fn path_for(&self, key: &StoreKey<'_>) -> PathBuf {
        self.dir.join(file_name(key))
    }

    /// Runs `op` on a blocking thread, after the sweep of stale temporary
    /// files if this is the store's first operation.
    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let sweep = (!self.swept.swap(true, Ordering::AcqRel)).then(|| self.dir.clone());
        blocking(move || {
            if let Some(dir) = sweep {
                sweep_stale_temp_files(&dir, SystemTime::now());
            }
            op()
        })
        .await
    }
}

fn file_name(key: &StoreKey<'_>) -> String {
    format!("rt-{:032x}.json", fnv1a_128(key))
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

fn fnv1a_128(key: &StoreKey<'_>) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut h = OFFSET;
    let bytes = key
        .provider
        .as_bytes()
        .iter()
        .chain(&[0u8])
        .chain(key.connection.as_bytes());
    for b in bytes {
        h ^= u128::from(*b);
        h = h.wrapping_mul(PRIME);
    }
    h
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    provider: String,
    connection: String,
    refresh_token: String,
}

fn read(path: &Path, key: (&str, &str)) -> io::Result<Option<SecretString>> {
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
    Ok(Some(SecretString::from(record.refresh_token)))
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

fn remove(dir: &Path, name: &str) -> io::Result<()> {
    match fs::remove_file(dir.join(name)) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
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

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("file store task failed: {e}")))?
}

#[async_trait::async_trait]
impl TokenStore for FileStore {
    async fn load(&self, key: &StoreKey<'_>) -> io::Result<Option<SecretString>> {
        let path = self.path_for(key);
        let (p, c) = (key.provider.to_owned(), key.connection.to_owned());
        self.run(move || read(&path, (&p, &c))).await
    }

    async fn save(&self, key: &StoreKey<'_>, refresh_token: &SecretString) -> io::Result<()> {
        let (dir, name) = (self.dir.clone(), file_name(key));
        let record = Record {
            provider: key.provider.to_owned(),
            connection: key.connection.to_owned(),
            refresh_token: refresh_token.expose_secret().to_owned(),
        };
        self.run(move || write(&dir, &name, &record)).await
    }

    async fn remove(&self, key: &StoreKey<'_>) -> io::Result<()> {
        let (dir, name) = (self.dir.clone(), file_name(key));
        self.run(move || remove(&dir, &name)).await
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

    /// `load`, failing (instead of hanging the test) if it blocks.
    async fn load_promptly(store: &FileStore, unblock: &Path) -> io::Result<Option<SecretString>> {
        match tokio::time::timeout(Duration::from_secs(10), store.load(&KEY)).await {
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
        let hash = format!("{:032x}", fnv1a_128(&KEY));
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
        assert!(store.load(&KEY).await.unwrap().is_none());
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
        store.clone().load(&KEY).await.unwrap();
        assert!(dir.join(&later).exists());
        // A new store (a restarted process) does.
        FileStore::new(&dir).load(&KEY).await.unwrap();
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
        // Saving replaces it with a regular file again.
        store.save(&KEY, &SecretString::from("rt-1")).await.unwrap();
        assert_eq!(
            store.load(&KEY).await.unwrap().unwrap().expose_secret(),
            "rt-1"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn other_non_regular_files_are_refused() {
        let dir = scratch("special");
        let store = FileStore::new(&dir);
        let path = store.path_for(&KEY);

        fs::create_dir(&path).unwrap();
        let err = store.load(&KEY).await.unwrap_err().to_string();
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
        elsewhere
            .save(&KEY, &SecretString::from("rt-elsewhere"))
            .await
            .unwrap();
        std::os::unix::fs::symlink(elsewhere.path_for(&KEY), &path).unwrap();
        let err = store.load(&KEY).await.unwrap_err().to_string();
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
        let err = store.load(&KEY).await.unwrap_err().to_string();
        assert!(
            err.contains("larger than 1024 KiB") && err.contains("delete it"),
            "{err}"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
