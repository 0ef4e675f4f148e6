//! `tokenauth request` keeps credentials inside the provider's `api`
//! prefixes across redirects, and refuses a header it cannot send (exit 2).
//! A real subprocess against two loopback HTTP servers that record what they
//! receive.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

const KEY: &str = "request-scope-static-key-8c41";
const TOKEN: &str = "request-scope-static-token-2d97";

/// One request a server received: its path and headers (lower-case names).
#[derive(Clone, Debug)]
struct Hit {
    path: String,
    headers: Vec<(String, String)>,
}

impl Hit {
    fn carries_a_credential(&self) -> bool {
        self.headers
            .iter()
            .any(|(_, v)| v.contains(KEY) || v.contains(TOKEN))
            || self.path.contains(KEY)
    }
}

/// A loopback HTTP/1.1 server: `/…/redirect?to=URL` answers 302 to URL,
/// anything else 200. Each connection serves one request.
struct Server {
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let record = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(64) {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((n, v)) = h.trim_end().split_once(':') {
                        headers.push((n.to_ascii_lowercase(), v.trim().to_owned()));
                    }
                }
                let to = path.split_once("/redirect?").and_then(|(_, query)| {
                    url::form_urlencoded::parse(query.as_bytes())
                        .find(|(k, _)| k == "to")
                        .map(|(_, v)| v.into_owned())
                });
                let echo = path.contains("/echo");
                // `/guarded`: 403 unless the request carries the key (an
                // API that rejects a bad credential with 403, as many do).
                let refused = path.contains("/guarded")
                    && !headers.iter().any(|(n, v)| n == "x-api-key" && v == KEY);
                let token = path.ends_with("/auth/token");
                let reply = match to {
                    _ if token => {
                        let body = format!(r#"{{"access_token":"{KEY}"}}"#);
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                    _ if refused => {
                        "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_owned()
                    }
                    _ if echo => {
                        // Quotes the request back: its path and headers.
                        let mut body = format!("you asked for {path}");
                        for (n, v) in &headers {
                            body.push_str(&format!("\n{n}: {v}"));
                        }
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                    Some(to) => format!(
                        "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    ),
                    None => "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                        .to_owned(),
                };
                record.lock().unwrap().push(Hit { path, headers });
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        Server { port, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

/// Writes a description with a custom-header provider and a bearer
/// provider on `api`'s `/keyed/` and `/bearer/`.
fn config(api: &Server) -> tempfile_path::Path {
    let toml = format!(
        r#"
[providers.keyed]
api = ["{keyed}"]
inputs.key = {{ default = "{KEY}" }}
inject = {{ header = "X-Api-Key", value = "{{{{ inputs.key }}}}" }}

[providers.bearer]
api = ["{bearer}"]
inputs.token = {{ default = "{TOKEN}" }}
inject = {{ header = "Authorization", value = "Bearer {{{{ inputs.token }}}}" }}

[providers.query]
api = ["{query}"]
inputs.key = {{ default = "{KEY}" }}
inject = {{ query = {{ name = "key", value = "{{{{ inputs.key }}}}" }} }}
"#,
        keyed = api.url("/keyed/"),
        bearer = api.url("/bearer/"),
        query = api.url("/query/"),
    );
    tempfile_path::Path::write(&toml)
}

/// A file in the temp directory, removed on drop.
mod tempfile_path {
    pub(crate) struct Path(pub(crate) std::path::PathBuf);

    impl Path {
        pub(crate) fn write(text: &str) -> Path {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "tokenauth-request-scope-{}-{n}.toml",
                std::process::id()
            ));
            std::fs::write(&path, text).unwrap();
            Path(path)
        }
    }

    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn tokenauth(config: &tempfile_path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tokenauth"))
        .arg("--config")
        .arg(&config.0)
        .args(args)
        .output()
        .expect("run tokenauth");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

fn redirect(from: &str, to: &str) -> String {
    format!(
        "{from}/redirect?to={}",
        url::form_urlencoded::byte_serialize(to.as_bytes()).collect::<String>()
    )
}

#[test]
fn request_stops_at_a_redirect_that_leaves_the_prefix() {
    let api = Server::start();
    let elsewhere = Server::start();
    let config = config(&api);
    for (provider, start, target) in [
        // A custom header to another origin: reqwest's default policy keeps it.
        ("keyed", api.url("/keyed"), elsewhere.url("/landing")),
        // Authorization to the same origin outside the prefix: kept too.
        ("bearer", api.url("/bearer"), api.url("/elsewhere")),
        ("keyed", api.url("/keyed"), api.url("/bearer/x")),
    ] {
        let before = (api.hits().len(), elsewhere.hits().len());
        let url = redirect(&start, &target);
        let (code, out, err) = tokenauth(&config, &["request", provider, &url]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.starts_with("302 Found"),
            "{provider} {target}: {out}{err}"
        );
        let api_hits = api.hits().split_off(before.0);
        assert_eq!(api_hits.len(), 1, "{target} was not followed: {api_hits:?}");
        assert!(api_hits[0].carries_a_credential(), "the API itself got it");
        assert_eq!(elsewhere.hits().len(), before.1, "{target}");
        for text in [&out, &err] {
            assert!(!text.contains(KEY) && !text.contains(TOKEN), "{text}");
        }
    }
    // Inside the same provider a redirect is still followed.
    let url = redirect(&api.url("/keyed"), &api.url("/keyed/landing"));
    let (code, out, err) = tokenauth(&config, &["request", "keyed", &url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("200 OK"), "{out}{err}");
    let last = api.hits().pop().unwrap();
    assert_eq!(last.path, "/keyed/landing");
    assert!(last.carries_a_credential());
}

#[test]
fn request_refuses_a_header_with_a_line_break_with_exit_2() {
    let api = Server::start();
    let config = config(&api);
    for header in [
        "X-Note: a\r\nX-Injected: 1",
        "X-Note: a\nb",
        "Bad Name: x",
        "no colon",
    ] {
        let (code, out, err) = tokenauth(
            &config,
            &["request", "keyed", &api.url("/keyed/x"), "-H", header],
        );
        assert_eq!(code, 2, "{header:?}: {out}{err}");
        assert!(err.contains("error: -H"), "{err}");
    }
    assert!(api.hits().is_empty(), "nothing was sent");
}

#[test]
fn request_does_not_print_a_credential_the_api_echoes() {
    let api = Server::start();
    let config = config(&api);
    for (provider, path) in [("query", "/query/echo?x=1"), ("bearer", "/bearer/echo")] {
        let (code, out, err) = tokenauth(&config, &["request", provider, &api.url(path)]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("you asked for"), "{out}");
        assert!(
            out.contains("[redacted]"),
            "the echo was there, redacted: {out}"
        );
        assert!(!out.contains(KEY) && !out.contains(TOKEN), "{out}");
    }
    let hit = &api.hits()[0];
    assert!(hit.carries_a_credential(), "the API got the key: {hit:?}");
    assert!(api.hits()[0].path.contains("x=1"));
}

/// `tokenauth test` sends its request once more with a deliberately wrong
/// credential: it tells the user which status the API rejects with when
/// that is not in `on_unauthorized` (403 here), and fails when the wrong
/// credential is accepted (the test request proves nothing). The provider
/// logs in at the loopback server, which hands out [`KEY`] as the token.
#[test]
fn test_learns_how_the_api_rejects_a_wrong_credential() {
    let api = Server::start();
    let toml = |test_path: &str| {
        format!(
            r#"
[providers.guarded]
api = ["{api}"]
inputs.secret = {{ env = "GUARDED_SECRET", secret = true }}
login = {{ url = "{login}", fields = {{ grant_type = "client_credentials", client_secret = "{{{{ inputs.secret }}}}" }} }}
response.access_token = "/access_token"
expiry.ttl = "1h"
inject = {{ header = "X-Api-Key", value = "{{{{ token.access }}}}" }}
test.url = "{test}"
"#,
            api = api.url("/v1/"),
            login = api.url("/auth/token"),
            test = api.url(test_path),
        )
    };
    let run = |config: &tempfile_path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_tokenauth"))
            .arg("--config")
            .arg(&config.0)
            .args(["test", "guarded"])
            .env("GUARDED_SECRET", "guarded-client-secret")
            .output()
            .expect("run tokenauth");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!stdout.contains(KEY), "{stdout}");
        (out.status.code().unwrap_or(-1), stdout)
    };

    let (code, out) = run(&tempfile_path::Path::write(&toml("/v1/guarded")));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[4/5] test    ok"), "{out}");
    assert!(
        out.contains("a wrong credential gets 403 Forbidden, not [401]: this API rejects credentials with 403; add it so that a rejected token is renewed: on_unauthorized = { status = [401, 403] }"),
        "{out}"
    );
    let probe = api.hits().pop().unwrap();
    assert!(
        !probe.carries_a_credential(),
        "the probe sent a wrong one: {probe:?}"
    );
    assert!(
        probe
            .headers
            .iter()
            .any(|(n, v)| n == "x-api-key" && v == "tokenauth-deliberately-wrong-credential"),
        "{probe:?}"
    );

    let (code, out) = run(&tempfile_path::Path::write(&toml("/v1/open")));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("[5/5] reject  FAILED"), "{out}");
    assert!(
        out.contains("does not need a credential, so it proves nothing"),
        "{out}"
    );
}
