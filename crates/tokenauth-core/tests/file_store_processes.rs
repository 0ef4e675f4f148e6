//! The file store shared by real processes: 4 child processes (this test
//! binary, run again) rotate one refresh token through `cas_refresh`, 200
//! rotations in all. Every token is used exactly once (no reuse) and the
//! chain of tokens is never broken (no token lost). The children also take
//! the key's lease now and then, and check that no two hold it at once.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokenauth_core::store::{CasOutcome, FileStore, LeaseOutcome, StoreKey, TokenStore};

const KEY: StoreKey<'static> = StoreKey {
    provider: "twoba",
    connection: "tenant-42",
};
const PROCESSES: usize = 4;
const ROTATIONS_EACH: usize = 50;
const FIRST: &str = "rt-start";
/// Set in a child: the store directory.
const CHILD_DIR: &str = "TOKENAUTH_FILE_STORE_CHILD_DIR";
/// Set in a child: its number.
const CHILD_ID: &str = "TOKENAUTH_FILE_STORE_CHILD_ID";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn four_processes_rotate_one_refresh_token_without_reuse_or_loss() {
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "tokenauth-processes-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let runtime = runtime();
    let store = FileStore::new(&dir);
    let seeded = runtime
        .block_on(store.cas_refresh(&KEY, None, Some(&SecretString::from(FIRST))))
        .unwrap();
    assert!(matches!(seeded, CasOutcome::Written));

    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|id| {
            Command::new(&exe)
                .args(["a_child_process_rotates", "--exact", "--nocapture"])
                .env(CHILD_DIR, &dir)
                .env(CHILD_ID, id.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("the child process starts")
        })
        .collect();
    let mut rotations: Vec<(String, String)> = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "a child failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let before = rotations.len();
        rotations.extend(stdout.lines().filter_map(|line| {
            let rest = line.strip_prefix("ROTATED ")?;
            let (used, new) = rest.split_once(' ')?;
            Some((used.to_owned(), new.to_owned()))
        }));
        assert_eq!(rotations.len() - before, ROTATIONS_EACH, "{stdout}");
    }

    // 0 reuse: every token was rotated away at most once.
    let used: HashSet<_> = rotations.iter().map(|(u, _)| u.clone()).collect();
    assert_eq!(
        used.len(),
        PROCESSES * ROTATIONS_EACH,
        "a token was used twice"
    );
    // Never a lost token: one unbroken chain from the first to the stored one.
    let next: HashMap<_, _> = rotations.iter().cloned().collect();
    let mut current = FIRST.to_owned();
    for _ in 0..rotations.len() {
        current = next.get(&current).expect("the chain is unbroken").clone();
    }
    assert!(!next.contains_key(&current));
    let stored = runtime.block_on(store.read(&KEY)).unwrap().refresh_token;
    assert_eq!(stored.unwrap().expose_secret(), current);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One child of the test above; does nothing when run on its own.
#[test]
fn a_child_process_rotates() {
    let (Some(dir), Some(id)) = (std::env::var_os(CHILD_DIR), std::env::var_os(CHILD_ID)) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let id = id.into_string().unwrap();
    let store = FileStore::new(&dir);
    runtime().block_on(async {
        let mut rotated = 0;
        let mut attempts = 0u64;
        while rotated < ROTATIONS_EACH {
            attempts += 1;
            assert!(attempts < 100_000, "no progress");
            if attempts.is_multiple_of(7) {
                hold_the_lease_alone(&store, &dir, &id).await;
            }
            let current = store.read(&KEY).await.unwrap().refresh_token;
            let new = SecretString::from(format!("rt-{id}-{rotated}"));
            match store
                .cas_refresh(&KEY, current.as_ref(), Some(&new))
                .await
                .unwrap()
            {
                CasOutcome::Written => {
                    let used = current.expect("the chain never ends in nothing");
                    println!("ROTATED {} {}", used.expose_secret(), new.expose_secret());
                    rotated += 1;
                }
                // Another process rotated it in between: read again.
                CasOutcome::Conflict { .. } => {}
            }
        }
    });
}

/// Takes the lease if it is free and, while holding it, checks that nobody
/// else does (a marker file only its holder may create).
async fn hold_the_lease_alone(store: &FileStore, dir: &Path, id: &str) {
    let ttl = Duration::from_secs(10);
    let LeaseOutcome::Acquired(lease) = store.try_lease(&KEY, id, ttl).await.unwrap() else {
        return;
    };
    let marker = dir.join("holder");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
        .expect("one lease holder at a time");
    std::thread::sleep(Duration::from_millis(1));
    std::fs::remove_file(&marker).unwrap();
    assert!(store.release(&lease).await.unwrap());
}
