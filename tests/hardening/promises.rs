//! The remaining promises of `SECURITY.md` that no other test proves on its
//! own: token requests never follow redirects, https is required except on
//! loopback or with an explicit opt-out, and the file store's permissions,
//! its clean-up after a killed writer and its refusal of non-regular files.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::helpers::CredentialOf as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use secrecy::SecretString;
use tokenauth::store::{FileStore, StoreKey, TokenStore};
use tokenauth::{Connection, Error, Providers, TokenAuth};

const SECRET: &str = "redirect-me-not-secret-9a8b7c";

/// A loopback server: `/token` answers `status` with `Location: /steal`;
/// records every path and body it receives.
async fn redirecting(status: u16) -> (SocketAddr, Arc<Mutex<Vec<(String, String)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let record = record.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            record
                                .lock()
                                .unwrap()
                                .push((path.clone(), String::from_utf8_lossy(&body).into_owned()));
                            let mut response =
                                http::Response::new(Full::new(Bytes::from_static(b"{}")));
                            if path == "/token" {
                                *response.status_mut() =
                                    http::StatusCode::from_u16(status).unwrap();
                                response
                                    .headers_mut()
                                    .insert("location", "/steal".parse().unwrap());
                            } else {
                                *response.body_mut() =
                                    Full::new(Bytes::from_static(br#"{"access_token":"stolen"}"#));
                            }
                            Ok::<_, Infallible>(response)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn redirect_toml(addr: SocketAddr) -> String {
    format!(
        r#"
[providers.x]
api = ["http://{addr}/api/"]
inputs.secret = {{ env = "TOKENAUTH_HARDENING_NEVER_SET", secret = true }}
login = {{ url = "http://{addr}/token", fields = {{ client_secret = "{{{{ inputs.secret }}}}" }} }}
expiry.ttl = "1h"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#
    )
}

#[tokio::test]
async fn token_requests_never_follow_redirects() {
    for status in [301, 302, 303, 307, 308] {
        let (addr, seen) = redirecting(status).await;
        let providers = Providers::from_toml("x.toml", &redirect_toml(addr)).unwrap();
        // The default client, and a caller's builder that would follow
        // redirects (the engine turns that off).
        for auth in [
            TokenAuth::builder(providers.clone())
                .retries(0)
                .build()
                .unwrap(),
            TokenAuth::builder(providers.clone())
                .http_client_builder(
                    reqwest::Client::builder().redirect(reqwest::redirect::Policy::limited(10)),
                )
                .retries(0)
                .build()
                .unwrap(),
        ] {
            let conn = Connection::new("c").with_secret("secret", SECRET);
            let err = auth.credential_of("x", Some(&conn)).await.unwrap_err();
            assert!(
                matches!(err, Error::Status { status: s, .. } if s == status),
                "{status}: {err:?}"
            );
            assert!(err.to_string().contains("never follow redirects"), "{err}");
            assert!(!format!("{err} {err:?}").contains(SECRET));
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{status}: {seen:?}");
        assert!(
            seen.iter().all(|(path, _)| path == "/token"),
            "{status}: the redirect target got a request: {seen:?}"
        );
    }
}

#[test]
fn https_is_required_except_on_loopback_or_with_the_opt_out() {
    let toml = |api: &str, login: &str, opt_out: bool| {
        format!(
            r#"
[providers.x]
api = ["{api}"]
{}
login = {{ url = "{login}", fields = {{ grant_type = "client_credentials" }} }}
expiry.ttl = "1h"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#,
            if opt_out {
                "allow_insecure_http = true"
            } else {
                ""
            }
        )
    };
    let load = |api: &str, login: &str, opt_out: bool| {
        Providers::from_toml("x.toml", &toml(api, login, opt_out))
    };
    for (api, login) in [
        ("http://api.example.com/", "https://auth.example.com/token"),
        ("https://api.example.com/", "http://auth.example.com/token"),
        ("http://10.0.0.1/", "https://auth.example.com/token"),
    ] {
        let err = load(api, login, false).expect_err(api);
        assert!(err.to_string().contains("allow_insecure_http"), "{err}");
        assert!(load(api, login, true).is_ok(), "the opt-out: {api} {login}");
    }
    for (api, login) in [
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/token"),
        ("http://localhost/api/", "http://localhost/token"),
        ("http://[::1]:9000/", "http://127.0.0.2/token"),
        ("https://api.example.com/", "https://auth.example.com/token"),
    ] {
        assert!(load(api, login, false).is_ok(), "{api} {login}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn file_store_is_private_and_names_hide_ids() {
    use std::os::unix::fs::PermissionsExt;

    let root = std::env::temp_dir().join(format!("tokenauth-hardening-{}", std::process::id()));
    let dir = root.join("nested").join("store");
    let store = FileStore::new(&dir);
    let key = StoreKey {
        provider: "twoba",
        connection: "tenant-with-a-secret-name",
    };
    let first = SecretString::from("rt-value-123");
    let _ = store.cas_refresh(&key, None, Some(&first)).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the store directory");
    assert_eq!(mode(&root.join("nested")), 0o700, "directories it creates");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    // The token file and its lock file (for writers in other processes).
    assert_eq!(files.len(), 2, "no temporary file left: {files:?}");
    assert_eq!(files[0], store.path_for(&key));
    assert_eq!(files[1], files[0].with_extension("lock"));
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("rt-")
                && !name.contains("twoba")
                && !name.contains("tenant")
                && !name.contains("rt-value"),
            "{name}"
        );
    }
    // Rewritten atomically, still private.
    let second = SecretString::from("rt-value-456");
    let _ = store
        .cas_refresh(&key, Some(&first), Some(&second))
        .await
        .unwrap();
    assert_eq!(mode(&files[0]), 0o600);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    let _ = std::fs::remove_dir_all(&root);
}

/// A refresh-only provider whose token endpoint is never reached (the store
/// is read first).
fn refresh_only_toml() -> &'static str {
    r#"
[providers.x]
api = ["http://127.0.0.1:9/api/"]
refresh = { url = "http://127.0.0.1:9/token", fields = { grant_type = "refresh_token", refresh_token = "{{ token.refresh }}" } }
response = { refresh_token = "/refresh_token", expires_in = "/expires_in" }
inject = { header = "Authorization", value = "Bearer {{ token.access }}" }
"#
}

#[cfg(unix)]
#[tokio::test]
async fn file_store_cleans_up_after_a_killed_writer_and_never_blocks_on_a_fifo() {
    use std::time::{Duration, SystemTime};

    let dir = std::env::temp_dir().join(format!("tokenauth-hardening-fifo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let key = StoreKey {
        provider: "x",
        connection: "c",
    };
    let store = FileStore::new(&dir);
    let _ = store
        .cas_refresh(
            &key,
            None,
            Some(&SecretString::from("rt-saved-before-the-crash")),
        )
        .await
        .unwrap();
    let path = store.path_for(&key);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();

    // What `kill -9` between the temporary file's creation and the rename
    // leaves, an hour ago; and one that another process is writing now.
    let leftover = dir.join(format!(".tmp-{name}-00000000deadbeef"));
    let in_progress = dir.join(format!(".tmp-{name}-00000000cafef00d"));
    for (file, age) in [(&leftover, 3600), (&in_progress, 0)] {
        std::fs::write(file, r#"{"refresh_token":"rt-half-written"}"#).unwrap();
        std::fs::File::options()
            .write(true)
            .open(file)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(age))
            .unwrap();
    }
    // A restarted process opens the store.
    let store = FileStore::new(&dir);
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(
            &store.read(&key).await.unwrap().refresh_token.unwrap()
        ),
        "rt-saved-before-the-crash"
    );
    assert!(!leftover.exists(), "the stale temporary file is removed");
    assert!(in_progress.exists(), "a write in progress is left alone");

    // A FIFO at the token file's path: the engine's load fails promptly with
    // an error that names the path, instead of blocking forever.
    std::fs::remove_file(&path).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let auth = TokenAuth::builder(Providers::from_toml("x.toml", refresh_only_toml()).unwrap())
        .store(Arc::new(FileStore::new(&dir)))
        .retries(0)
        .build()
        .unwrap();
    let conn = Connection::new("c");
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        auth.credential_of("x", Some(&conn)),
    )
    .await
    .unwrap_or_else(|_| {
        // A writer unblocks the stuck reader, so the runtime can stop.
        let _ = std::fs::OpenOptions::new().write(true).open(&path);
        panic!("load blocked on the FIFO");
    });
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Store {
                action: "read the shared token state",
                ..
            }
        ),
        "{err:?}"
    );
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(
        source.contains(&path.display().to_string())
            && source.contains("FIFO")
            && source.contains("remove it"),
        "{source}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
