use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use super::{StoreKey, TokenStore};

/// Keeps refresh tokens in files, one per (provider, connection), in one
/// directory.
///
/// - File names are `rt-<hash>.json`, a 128-bit FNV-1a hash of the provider
///   and connection ids: no secret (and no id) in a file name.
/// - Each file holds `{"provider", "connection", "refresh_token"}`; a file
///   whose ids do not match the key (a hash collision) is treated as absent.
/// - Writes are atomic: a temporary file in the same directory, flushed and
///   then renamed over the old one, so a reader (or a crash) never sees half
///   a token.
/// - On Unix the directory is created `0700` and files are `0600`.
#[derive(Clone, Debug)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// A store in `dir`, created (with parents) on first save.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileStore { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds `key`'s refresh token.
    pub fn path_for(&self, key: &StoreKey<'_>) -> PathBuf {
        self.dir.join(format!("rt-{:032x}.json", fnv1a_128(key)))
    }
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
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
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

fn write(dir: &Path, path: &Path, record: &Record) -> io::Result<()> {
    create_dir(dir)?;
    let body = serde_json::to_vec(record).map_err(io::Error::other)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{:016x}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("rt"),
        fastrand::u64(..)
    ));
    let result = (|| {
        let mut file = open_private(&tmp)?;
        file.write_all(&body)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
fn create_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
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
        blocking(move || read(&path, (&p, &c))).await
    }

    async fn save(&self, key: &StoreKey<'_>, refresh_token: &SecretString) -> io::Result<()> {
        let path = self.path_for(key);
        let dir = self.dir.clone();
        let record = Record {
            provider: key.provider.to_owned(),
            connection: key.connection.to_owned(),
            refresh_token: refresh_token.expose_secret().to_owned(),
        };
        blocking(move || write(&dir, &path, &record)).await
    }

    async fn remove(&self, key: &StoreKey<'_>) -> io::Result<()> {
        let path = self.path_for(key);
        blocking(move || match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
