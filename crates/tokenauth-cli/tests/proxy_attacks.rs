//! Red-team tests of `tokenauth proxy`: the real binary in a child process,
//! driven with raw bytes on a TCP socket (no client normalises what is
//! sent), in front of the emulator and a raw local API of the test's own
//! that records every byte it receives. Each test asserts the safe
//! behaviour: what the API received (or that it received nothing), the
//! status, the body, and that the proxy survived.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use tokenauth_emulator::{
    BRO_DEMO_PASSWORD, Emulator, EmulatorConfig, Provider, REOB_DEMO_PASSWORD, StatusFault,
    TWOBA_DEMO_CLIENT_SECRET, TWOBA_DEMO_PASSWORD,
};

const KEY: &str = "proxy-key-0123456789abcdef";
const LOCAL_KEY: &str = "local-api-key-secret-42";
const QUERY_KEY: &str = "query-api-key-secret-77";
/// Characters that form encoding changes, so an echo of the form differs.
const TOKEN_PASSWORD: &str = "p@ss w0rd&tok-secret-55";

#[path = "proxy/common.rs"]
mod common;

use common::{LocalServer, ProxyProcess, SEED_INPUTS, root};

// ------------------------------------------------------------ the fixture

struct Fixture {
    emulator: Emulator,
    api: RawApi,
    dir: PathBuf,
    ca: PathBuf,
    config: PathBuf,
    connections: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let emulator = Emulator::start_on_own_runtime(
            EmulatorConfig::default()
                .tls(true)
                .record_api_requests(10_000),
            1,
        )
        .expect("emulator");
        let dir = std::env::temp_dir().join(format!(
            "tokenauth-proxy-attacks-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, emulator.ca_cert_pem().expect("tls on")).unwrap();
        let api = RawApi::start(serve);
        let seeds = std::fs::read_to_string(root().join("providers.toml")).unwrap();
        let config = dir.join("providers.toml");
        std::fs::write(
            &config,
            format!(
                r#"{seeds}
[providers.local]
api = ["http://127.0.0.1:{port}/v1/"]
inputs.key = {{ env = "LOCAL_API_KEY", secret = true }}
inject = {{ header = "X-Api-Key", value = "{{{{ inputs.key }}}}" }}

[providers.localq]
api = ["http://127.0.0.1:{port}/q/"]
inputs.key = {{ env = "LOCAL_Q_KEY", secret = true }}
inject.query = {{ name = "api_key", value = "{{{{ inputs.key }}}}" }}

[providers.localtok]
api = ["http://127.0.0.1:{port}/lt/"]
inputs.username = {{ env = "LOCALTOK_USER" }}
inputs.password = {{ env = "LOCALTOK_PASSWORD", secret = true }}
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
login = {{ url = "http://127.0.0.1:{port}/tok/echo", body = "form", fields = {{ grant_type = "password", username = "{{{{ inputs.username }}}}", password = "{{{{ inputs.password }}}}" }} }}
response = {{ access_token = "/access_token" }}
expiry = {{ ttl = "60m" }}

[providers.tmpl]
api = ["http://127.0.0.1:{port}/t/{{{{ inputs.tenant }}}}/"]
inputs.tenant = {{ env = "TMPL_TENANT" }}
inputs.key = {{ env = "LOCAL_API_KEY", secret = true }}
inject = {{ header = "X-Api-Key", value = "{{{{ inputs.key }}}}" }}
"#,
                port = api.port
            ),
        )
        .unwrap();
        let connections = dir.join("connections.toml");
        std::fs::write(
            &connections,
            r#"[connections.tmpl-a]
provider = "tmpl"
inputs.tenant = "a"
inputs.key = { env = "LOCAL_API_KEY" }

[connections.tmpl-dots]
provider = "tmpl"
inputs.tenant = ".."
inputs.key = { env = "LOCAL_API_KEY" }

[connections.tmpl-slash]
provider = "tmpl"
inputs.tenant = "a/../../v1"
inputs.key = { env = "LOCAL_API_KEY" }

[connections.tmpl-encoded]
provider = "tmpl"
inputs.tenant = "%2e%2e"
inputs.key = { env = "LOCAL_API_KEY" }
"#,
        )
        .unwrap();
        Fixture {
            emulator,
            api,
            dir,
            ca,
            config,
            connections,
        }
    }

    fn proxy(&self, verbosity: &str, extra: &[&str], env: &[(&str, &str)]) -> ProxyProcess {
        let mut cmd = common::tokenauth(&self.emulator, &self.ca, &self.config, &self.dir);
        cmd.arg(verbosity);
        cmd.args(["proxy", "--listen", "127.0.0.1:0", "--connections"]);
        cmd.arg(&self.connections);
        cmd.args(extra);
        let ours = [
            ("LOCAL_API_KEY", LOCAL_KEY),
            ("LOCAL_Q_KEY", QUERY_KEY),
            ("TMPL_TENANT", "default-tenant"),
            ("LOCALTOK_USER", "tok-user"),
            ("LOCALTOK_PASSWORD", TOKEN_PASSWORD),
            ("TOKENAUTH_PROXY_KEY", KEY),
        ];
        common::set_env(&mut cmd, SEED_INPUTS.iter().chain(&ours).chain(env));
        ProxyProcess::spawn(cmd)
    }

    /// Every secret the fixture holds or an API saw as a credential.
    fn secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self
            .emulator
            .recorded_api_requests()
            .into_iter()
            .flat_map(|r| r.headers)
            .filter(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .map(|(_, value)| match value.split_once(' ') {
                Some((_, credential)) => credential.to_owned(),
                None => value,
            })
            .collect();
        secrets.extend(
            [
                REOB_DEMO_PASSWORD,
                TWOBA_DEMO_PASSWORD,
                TWOBA_DEMO_CLIENT_SECRET,
                BRO_DEMO_PASSWORD,
                LOCAL_KEY,
                QUERY_KEY,
                TOKEN_PASSWORD,
                "tok-secret-55",
                KEY,
            ]
            .map(str::to_owned),
        );
        secrets.sort();
        secrets.dedup();
        secrets
    }

    /// Nothing any API received holds the proxy key or a caller credential.
    fn assert_api_saw_no_key(&self) {
        for r in self.emulator.recorded_api_requests() {
            let all = format!("{} {:?} {}", r.path, r.headers, r.body);
            assert!(!all.contains(KEY), "the emulator saw the proxy key: {all}");
            assert!(!all.contains("caller-credential"), "{all}");
        }
        for r in self.api.requests() {
            assert!(!r.raw.contains(KEY), "the API saw the proxy key: {}", r.raw);
            assert!(
                !r.raw.to_ascii_lowercase().contains("tokenauth-"),
                "the API saw a Tokenauth header: {}",
                r.raw
            );
        }
    }
}

/// The attacks' checks on a running proxy.
trait Alive {
    fn assert_alive(&mut self);
}

impl Alive for ProxyProcess {
    /// Still running, still answering, never panicked.
    fn assert_alive(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the proxy exited: {}",
            self.log()
        );
        let health = send(
            self.addr(),
            b"GET /_tokenauth/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(health.status, 200, "{health:?}");
        assert!(!self.log().contains("panicked"), "{}", self.log());
    }
}

// ------------------------------------------------------------ raw HTTP

#[derive(Debug)]
struct RawReply {
    status: u16,
    /// Names lower case; values as bytes, read lossily.
    headers: Vec<(String, String)>,
    body: String,
    /// Everything received, lossily.
    raw: String,
}

impl RawReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn proxy_error(&self) -> Option<&str> {
        self.header("tokenauth-error")
    }
}

/// Writes `request` as is and reads one response (status 0: the proxy
/// closed the connection without one).
fn send(addr: &str, request: &[u8]) -> RawReply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // The proxy may answer (and close) before it read everything.
    let _ = stream.write_all(request);
    read_response(&mut stream)
}

fn read_response(stream: &mut TcpStream) -> RawReply {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break Some(i);
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let Some(head_end) = head_end else {
        return RawReply {
            status: 0,
            headers: Vec::new(),
            body: String::new(),
            raw: String::from_utf8_lossy(&buf).into_owned(),
        };
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    loop {
        let done = match length {
            Some(n) => body.len() >= n,
            None if chunked => find(&body, b"0\r\n\r\n").is_some(),
            None => false,
        };
        if done {
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let body = if chunked { dechunk(&body) } else { body };
    RawReply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        raw: format!("{head}\r\n\r\n{}", String::from_utf8_lossy(&body)),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(data, b"\r\n") {
        let size = std::str::from_utf8(&data[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap().trim(), 16).ok())
            .unwrap_or(0);
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

fn get(addr: &str, target: &str, headers: &[&str]) -> RawReply {
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    send(addr, request.as_bytes())
}

fn key() -> String {
    format!("Tokenauth-Key: {KEY}")
}

// ------------------------------------------------------------ the raw API

/// A request the raw API received: its request target and every byte of
/// its head and body.
#[derive(Clone, Debug)]
struct Received {
    target: String,
    raw: String,
}

/// An HTTP/1.1 server on loopback for the local providers. Replies by the
/// last path segment: `hop` with hop-by-hop headers of its own (one
/// `Connection` value not UTF-8) and a forged `Tokenauth-Error`;
/// `redirect` with the request target echoed in `Location`,
/// `Content-Location`, `Refresh` and `Link`; `redirect-bytes` the same
/// with a non-UTF-8 byte after it; anything else 200 `{"ok":true}`.
type RawApi = LocalServer<Received>;

fn serve(mut stream: TcpStream, port: u16, log: &Mutex<Vec<Received>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let lower = head.to_ascii_lowercase();
        let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let length: usize = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let chunked = lower
            .lines()
            .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
        let mut rest = buf[head_end + 4..].to_vec();
        // Where the search for the last chunk resumes (bodies are large).
        let mut scanned: usize = 0;
        let body_end = loop {
            let end = if chunked {
                // The last chunk, then trailers up to an empty line.
                let zero = if rest.starts_with(b"0\r\n") {
                    Some(0)
                } else {
                    let from = scanned.saturating_sub(8);
                    scanned = rest.len();
                    find(&rest[from..], b"\r\n0\r\n").map(|i| from + i + 2)
                };
                zero.and_then(|zero| {
                    scanned = zero;
                    find(&rest[zero..], b"\r\n\r\n").map(|i| zero + i + 4)
                })
            } else {
                (rest.len() >= length).then_some(length)
            };
            if let Some(end) = end {
                break end;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
            }
        };
        let raw = format!(
            "{head}\r\n\r\n{}",
            String::from_utf8_lossy(&rest[..body_end])
        );
        buf = rest[body_end..].to_vec();
        log.lock().unwrap().push(Received {
            target: target.clone(),
            raw: raw.clone(),
        });
        let path = target.split('?').next().unwrap_or("");
        let last = path.rsplit('/').next().unwrap_or("");
        let method = head.split_whitespace().next().unwrap_or("");
        let mut reply: Vec<u8> = match last {
            // TRACE as RFC 9110 9.3.8 has it: the request as received
            // comes back as the body.
            _ if method == "TRACE" || method == "TRACK" => format!(
                "HTTP/1.1 200 OK\r\nContent-Type: message/http\r\nContent-Length: {}\r\n\r\n{head}",
                head.len()
            )
            .into_bytes(),
            // Hangs up without an answer, mid-body, or after a head too
            // large for the proxy's client.
            "close" => return,
            // A token endpoint that echoes the token request it refuses
            // (as some do in their error messages).
            "echo" => {
                let echo = raw.replace('\\', "\\\\").replace('"', "\\\"").replace("\r\n", "\\n");
                let body = format!("{{\"error\":\"invalid_grant\",\"received\":\"{echo}\"}}");
                format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            }
            // Both framings: Transfer-Encoding wins (RFC 9112 6.3).
            "tecl" => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n14\r\nHELLO-WORLD-AND-MORE\r\n0\r\n\r\n".to_vec(),
            "switch" => {
                let _ = stream.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nraw bytes of another protocol");
                return;
            }
            "short" => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
                return;
            }
            "bighead" => {
                let mut r = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
                r.extend(std::iter::repeat_n(b'h', 1_000_000));
                r.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
                let _ = stream.write_all(&r);
                return;
            }
            "hop" => b"HTTP/1.1 200 OK\r\nConnection: X-Api-Hop, \xe9t\xe9\r\nX-Api-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nTokenauth-Error: proxy_key\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}".to_vec(),
            "redirect" | "redirect-bytes" => {
                let url = format!("http://127.0.0.1:{port}{target}");
                let tail: &[u8] = if last == "redirect-bytes" { b"&x=\xe9" } else { b"" };
                let mut r = b"HTTP/1.1 302 Found\r\n".to_vec();
                for (name, prefix, suffix) in [
                    ("Location", "", ""),
                    ("Content-Location", "", ""),
                    ("Refresh", "0; url=", ""),
                    ("Link", "<", ">; rel=\"next\""),
                ] {
                    r.extend_from_slice(format!("{name}: {prefix}{url}").as_bytes());
                    r.extend_from_slice(tail);
                    r.extend_from_slice(format!("{suffix}\r\n").as_bytes());
                }
                r.extend_from_slice(b"Content-Length: 0\r\n\r\n");
                r
            }
            _ => b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}".to_vec(),
        };
        if stream.write_all(&reply).is_err() {
            return;
        }
        reply.clear();
    }
}

// ------------------------------------------------------------ 1. open relay

#[test]
fn the_proxy_is_never_an_open_relay() {
    let fx = Fixture::new("relay");
    let mut proxy = fx.proxy("-v", &[], &[]);
    let p = proxy.addr().to_owned();
    let port = fx.api.port;

    // Dot segments in every encoding, encoded separators, empty segments,
    // NUL: refused before anything is sent.
    for rest in [
        "..",
        "../q/x",
        "v1/../../q/x",
        "%2e%2e/q/x",
        "%2E%2E/q/x",
        "%2e%2E/q/x",
        ".%2e/q/x",
        "%2E./q/x",
        "a/%2e",
        "a/.",
        "./a",
        "a/%2e%2e",
        "a%2fb",
        "a%2F..%2F..%2Fq",
        "a%5c..%5cq",
        "a%5C..",
        "/evil.example/x",
        "a//b",
        "a%00b",
        // Path parameters: `..;` is `..` to Tomcat, Jetty and Spring.
        "..;/q/x",
        "..;x=1/q/x",
        "%2e%2e;/q/x",
        "v1/.;/..;/..;/q/x",
        // Invalid or overlong percent-encodings: IIS reads `%u002e` as a
        // dot, old decoders `%c0%ae`.
        "%u002e%u002e/q/x",
        "a/%U002E%U002E/%U002E%U002E/q/x",
        "%c0%ae%c0%ae/q/x",
        "%C0%AE%C0%AE/q/x",
        "a%c0%afb",
        "a%zzb",
        "%",
        "a%2",
    ] {
        let before = fx.api.requests().len();
        let reply = get(&p, &format!("/local/{rest}"), &[&key()]);
        assert_eq!(reply.status, 400, "{rest}: {reply:?}");
        assert_eq!(
            reply.proxy_error(),
            Some("outside_api"),
            "{rest}: {reply:?}"
        );
        assert_eq!(fx.api.requests().len(), before, "{rest} was sent");
    }
    // A raw backslash: refused by the proxy, or by hyper itself.
    let reply = get(&p, "/local/a\\..\\..\\q", &[&key()]);
    assert!(reply.status == 400, "{reply:?}");
    assert!(fx.api.requests().is_empty());

    // Encodings that are not dot segments (overlong UTF-8, double
    // encoding, `;` parameters): sent as written, inside the prefix.
    for rest in [
        "a/..;",
        "a/b/..;x/c",
        "a|b^c",
        "a{b}c",
        "a`b'c",
        "%252e%252e/x",
        "%25u002e%25u002e/x",
        "%ef%bc%8e%ef%bc%8e/x",
        "%2e%2e%2e/x",
        "...",
        "@evil.example/x",
        "a@evil.example:80/x",
        "http:%2F%2Fevil",
    ] {
        let reply = get(&p, &format!("/local/{rest}"), &[&key()]);
        if reply.status == 400 {
            // Refused (by the proxy, or by hyper before it) is safe too, as
            // long as nothing was sent.
            assert!(
                matches!(reply.proxy_error(), Some("outside_api") | None),
                "{rest}: {reply:?}"
            );
            assert!(
                fx.api.requests().iter().all(|r| !r.target.contains(rest)),
                "{rest}"
            );
            continue;
        }
        assert_eq!(reply.status, 200, "{rest}: {reply:?}");
        let seen = fx.api.last();
        assert_eq!(seen.target, format!("/v1/{rest}"), "{rest}");
        assert!(
            seen.raw.contains(&format!("host: 127.0.0.1:{port}\r\n")),
            "{}",
            seen.raw
        );
    }

    // Absolute-form request targets, with and without userinfo, and a
    // forged Host: the provider's base is the only place it goes.
    for (target, host) in [
        ("http://evil.example/local/items".to_owned(), "evil.example"),
        (
            "http://user@evil.example:9/local/items".to_owned(),
            "evil.example",
        ),
        (
            format!("http://127.0.0.1:{port}@evil.example/local/items"),
            "evil.example",
        ),
        ("/local/items".to_owned(), "evil.example:1"),
    ] {
        let before = fx.api.requests().len();
        let reply = send(
            &p,
            format!(
                "GET {target} HTTP/1.1\r\nHost: {host}\r\n{}\r\nConnection: close\r\n\r\n",
                key()
            )
            .as_bytes(),
        );
        if reply.status == 200 {
            let seen = fx.api.last();
            assert_eq!(seen.target, "/v1/items", "{target}");
            assert!(
                seen.raw.contains(&format!("host: 127.0.0.1:{port}\r\n")),
                "{}",
                seen.raw
            );
            assert!(!seen.raw.contains("evil"), "{}", seen.raw);
        } else {
            assert_eq!(fx.api.requests().len(), before, "{target}: {reply:?}");
            assert!(reply.status == 400 || reply.status == 0, "{reply:?}");
        }
    }

    // A query cannot move the path or the host.
    for query in ["?/../../q/x", "?@evil.example/", "?x=1#frag", "?%23/../x"] {
        let reply = get(&p, &format!("/local/items{query}"), &[&key()]);
        assert_eq!(reply.status, 200, "{query}: {reply:?}");
        let seen = fx.api.last();
        assert!(seen.target.starts_with("/v1/items?"), "{}", seen.target);
    }

    // A fragment in the request target cannot move the path either.
    for target in ["/local/items#/../../q/x", "/local/items%23/../../q/x"] {
        let before = fx.api.requests().len();
        let reply = get(&p, target, &[&key()]);
        if reply.status == 200 {
            let seen = fx.api.last();
            assert!(seen.target.starts_with("/v1/items"), "{}", seen.target);
        } else {
            assert_eq!(reply.status, 400, "{target}: {reply:?}");
            assert_eq!(fx.api.requests().len(), before, "{target}");
        }
    }

    // CONNECT (authority-form and origin-form) and OPTIONS *: never sent.
    let before = fx.api.requests().len();
    for request in [
        format!(
            "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{}\r\n\r\n",
            key()
        ),
        format!(
            "CONNECT /local/items HTTP/1.1\r\nHost: x\r\n{}\r\nConnection: close\r\n\r\n",
            key()
        ),
        format!(
            "OPTIONS * HTTP/1.1\r\nHost: x\r\n{}\r\nConnection: close\r\n\r\n",
            key()
        ),
    ] {
        let reply = send(&p, request.as_bytes());
        assert!(
            reply.status >= 400 || reply.status == 0,
            "{request}: {reply:?}"
        );
    }
    assert_eq!(
        fx.api.requests().len(),
        before,
        "CONNECT or OPTIONS * was sent"
    );

    // A provider's path cannot reach another provider's prefix on the same
    // host: /local/../q/ is refused above; /q/ under local's name is a path
    // inside local's prefix.
    let reply = get(&p, "/local/q/x", &[&key()]);
    assert_eq!(reply.status, 200);
    assert_eq!(fx.api.last().target, "/v1/q/x");

    // Templated prefixes: a connection value that would leave its prefix
    // is refused (core renders a path placeholder as one segment).
    let reply = get(&p, "/tmpl/x", &[&key(), "Tokenauth-Connection: tmpl-a"]);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(fx.api.last().target, "/t/a/x");
    for tenant in ["tmpl-dots", "tmpl-slash", "tmpl-encoded"] {
        let before = fx.api.requests().len();
        let reply = get(
            &p,
            "/tmpl/x",
            &[&key(), &format!("Tokenauth-Connection: {tenant}")],
        );
        if reply.status == 200 {
            let seen = fx.api.last();
            assert!(seen.target.starts_with("/t/"), "{tenant}: {}", seen.target);
            assert!(
                !seen.target.contains("/../") && seen.target.matches('/').count() == 3,
                "{tenant}: {}",
                seen.target
            );
        } else {
            assert_eq!(reply.status, 400, "{tenant}: {reply:?}");
            assert_eq!(fx.api.requests().len(), before, "{tenant}");
        }
    }
    // Nothing went anywhere but the local API's prefixes.
    for r in fx.api.requests() {
        assert!(
            ["/v1/", "/t/a/", "/t/"]
                .iter()
                .any(|p| r.target.starts_with(p)),
            "{}",
            r.target
        );
    }
    fx.assert_api_saw_no_key();
    proxy.assert_alive();
}

// ------------------------------------------------------------ 2. the key

#[test]
fn the_key_has_no_bypass_and_never_travels() {
    let fx = Fixture::new("key");
    let mut proxy = fx.proxy("-v", &[], &[]);
    let p = proxy.addr().to_owned();
    let basic = format!(
        "Proxy-Authorization: Basic {}",
        "cHJveHk6cHJveHkta2V5LTAxMjM0NTY3ODlhYmNkZWY="
    );
    let wrong = "Tokenauth-Key: proxy-key-0123456789abcdeX".to_owned();
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("/local/items", vec![]),
        ("/local/items", vec![wrong.clone()]),
        ("/local/items", vec![wrong.clone(), key()]),
        ("/local/items", vec![basic]),
        ("/local/items", vec![format!("Authorization: Bearer {KEY}")]),
        ("/local/items", vec![format!("Tokenauth_Key: {KEY}")]),
        ("/local/items", vec![format!("Proxy-Authorization: {KEY}")]),
        (
            "/local/items",
            vec![format!("Proxy-Authorization: Bearer{KEY}")],
        ),
        ("/local/items", vec![format!("Tokenauth-Key: {KEY}x")]),
        (
            "/local/items",
            vec![format!("Tokenauth-Key: {}", &KEY[1..])],
        ),
        ("/local/items", vec!["Tokenauth-Key:".to_owned()]),
        (
            "/local/items?tokenauth-key=proxy-key-0123456789abcdef",
            vec![],
        ),
        ("/_TOKENAUTH/stats", vec![]),
        ("/_tokenauth/stats", vec![]),
        ("/_tokenauth/stats/", vec![]),
        ("/_tokenauth/../local/items", vec![]),
        ("/_tokenauth/health/../../local/items", vec![]),
        ("/_tokenauth/%2e%2e/local/items", vec![]),
        ("//_tokenauth/health/../local/items", vec![]),
        ("/_tokenauth/health?/../local/items", vec![]),
    ];
    for (path, headers) in &cases {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let reply = get(&p, path, &headers);
        assert!(
            reply.status == 401 || reply.status == 404 || reply.status == 200,
            "{path} {headers:?}: {reply:?}"
        );
        if reply.status == 200 {
            // Only the health endpoint answers without the key.
            assert_eq!(
                reply.body.trim(),
                "{\"status\":\"ok\"}",
                "{path}: {reply:?}"
            );
        } else {
            assert!(reply.proxy_error().is_some(), "{path}: {reply:?}");
        }
        assert!(!reply.body.contains("engine"), "{path}: {reply:?}");
    }
    assert!(
        fx.api.requests().is_empty(),
        "a request without the key was forwarded: {:?}",
        fx.api.requests()
    );

    // The key in any admitted form, in odd cases and places, never
    // reaches the API; a Connection header naming the key header does not
    // unlock anything either.
    for headers in [
        vec![format!("TOKENAUTH-KEY: {KEY}")],
        vec![format!("proxy-authorization: bEaReR   {KEY}  ")],
        vec![
            format!("Tokenauth-Key: {KEY}"),
            format!("Tokenauth-Key: {KEY}"),
        ],
        vec![
            format!("Tokenauth-Key: {KEY}"),
            "Connection: Tokenauth-Key".to_owned(),
        ],
        vec![
            format!("Tokenauth-Key: {KEY}"),
            format!("Proxy-Authorization: Bearer {KEY}"),
            format!("Tokenauth-Anything: {KEY}"),
        ],
    ] {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let reply = get(&p, "/local/items", &headers);
        assert_eq!(reply.status, 200, "{headers:?}: {reply:?}");
        assert!(!reply.raw.contains(KEY), "{reply:?}");
    }
    // Pipelined on one connection: the key is checked per request.
    let before = fx.api.requests().len();
    let mut stream = TcpStream::connect(&p).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(
            format!(
                "GET /local/first HTTP/1.1\r\nHost: x\r\n{}\r\n\r\nGET /local/second HTTP/1.1\r\nHost: x\r\n\r\nGET /_tokenauth/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                key()
            )
            .as_bytes(),
        )
        .unwrap();
    // All three answers, up to the close the third asked for.
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    let all = String::from_utf8_lossy(&all);
    let statuses: Vec<&str> = all
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &all[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "401", "401"], "{all}");
    let after: Vec<String> = fx.api.requests()[before..]
        .iter()
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(after, ["/v1/first"]);

    // In trailers of a chunked body (buffered and streamed).
    for size in [10usize, 3 * 1024 * 1024] {
        let mut request = format!(
            "POST /local/items HTTP/1.1\r\nHost: x\r\n{}\r\nTrailer: Tokenauth-Key, Authorization\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{size:x}\r\n",
            key()
        )
        .into_bytes();
        request.extend(std::iter::repeat_n(b'a', size));
        request.extend_from_slice(
            format!(
                "\r\n0\r\nTokenauth-Key: {KEY}\r\nAuthorization: Bearer caller-credential\r\n\r\n"
            )
            .as_bytes(),
        );
        let reply = send(&p, &request);
        assert_eq!(reply.status, 200, "{size}: {reply:?}");
        let seen = fx.api.last();
        assert!(
            !seen.raw.contains("caller-credential"),
            "{}",
            &seen.raw[..400]
        );
    }
    fx.assert_api_saw_no_key();
    assert!(!proxy.log().contains(KEY), "{}", proxy.log());
    proxy.assert_alive();
}

// ------------------------------------------------------------ 3. secrets

#[test]
fn no_secret_reaches_a_caller_a_log_or_an_error_even_at_trace() {
    let fx = Fixture::new("secrets");
    let mut proxy = fx.proxy("-vvv", &["--timeout", "2s"], &[]);
    let p = proxy.addr().to_owned();
    let mut caller = String::new();
    for path in [
        "/reobtimaal/v1/projecten?page=2",
        "/twoba/1/json/Product/DetailsForProduct",
        "/bro/validatie",
        "/local/items",
        "/localq/items?a=1",
        "/localq/items?api_key=caller-credential&b=2",
        "/localq/items?api%5Fkey=caller-credential",
    ] {
        let reply = get(&p, path, &[&key()]);
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        caller += &reply.raw;
    }
    // The query credential went to the API once, the caller's nowhere.
    let q: Vec<Received> = fx
        .api
        .requests()
        .into_iter()
        .filter(|r| r.target.starts_with("/q/"))
        .collect();
    assert_eq!(q.len(), 3);
    for r in &q {
        assert_eq!(
            r.target.matches(&format!("api_key={QUERY_KEY}")).count(),
            1,
            "{}",
            r.target
        );
        assert!(!r.target.contains("caller-credential"), "{}", r.target);
    }

    // The API echoes its URL (with the query credential) in its redirect's
    // URL-valued headers: the caller gets none of the key.
    for path in ["/localq/redirect?a=1", "/localq/redirect-bytes?a=1"] {
        let reply = get(&p, path, &[&key()]);
        assert_eq!(reply.status, 302, "{path}: {reply:?}");
        assert!(
            !reply.raw.contains(QUERY_KEY),
            "{path}: the caller saw the query credential: {reply:?}"
        );
        caller += &reply.raw;
    }
    // What is not the credential is handed back as the API sent it.
    let reply = get(&p, "/localq/redirect?a=1", &[&key()]);
    let url = format!("http://127.0.0.1:{}/q/redirect?a=1", fx.api.port);
    assert_eq!(reply.header("location"), Some(url.as_str()));
    assert_eq!(
        reply.header("link"),
        Some(format!("<{url}>; rel=\"next\"").as_str())
    );
    let reply = get(&p, "/localq/redirect", &[&key()]);
    assert_eq!(
        reply.header("link"),
        Some(
            format!(
                "<http://127.0.0.1:{}/q/redirect>; rel=\"next\"",
                fx.api.port
            )
            .as_str()
        ),
        "{reply:?}"
    );

    // TRACE (and IIS's TRACK) would have the API echo the request, the
    // credential it carries included, back to the caller: never sent.
    for method in ["TRACE", "TRACK", "trace"] {
        let before = fx.api.requests().len();
        let reply = send(
            &p,
            format!(
                "{method} /local/items HTTP/1.1\r\nHost: x\r\n{}\r\nConnection: close\r\n\r\n",
                key()
            )
            .as_bytes(),
        );
        assert!(
            !reply.raw.contains(LOCAL_KEY),
            "{method}: the caller saw the API key: {reply:?}"
        );
        assert_eq!(reply.status, 400, "{method}: {reply:?}");
        assert_eq!(reply.proxy_error(), Some("bad_request"), "{method}");
        let sent: Vec<Received> = fx.api.requests()[before..].to_vec();
        assert!(
            sent.iter().all(|r| !r.raw.starts_with(method)),
            "{method} was sent: {sent:?}"
        );
        caller += &reply.raw;
    }

    // A token endpoint that echoes the token request in its refusal: the
    // 502's detail quotes the reply without the password, in any encoding.
    let reply = get(&p, "/localtok/x", &[&key()]);
    assert_eq!(reply.status, 502, "{reply:?}");
    assert_eq!(reply.proxy_error(), Some("token_endpoint"), "{reply:?}");
    assert!(reply.body.contains("invalid_grant"), "{reply:?}");
    let sent = fx
        .api
        .requests()
        .into_iter()
        .find(|r| r.target == "/tok/echo")
        .expect("the token request");
    let form: String = url::form_urlencoded::byte_serialize(TOKEN_PASSWORD.as_bytes()).collect();
    assert!(sent.raw.contains(&form), "{}", sent.raw);
    for secret in [TOKEN_PASSWORD, form.as_str(), "tok-secret-55"] {
        assert!(!reply.raw.contains(secret), "{secret}: {reply:?}");
    }
    caller += &reply.raw;

    // Errors of every kind: no secret in the body or the headers.
    fx.emulator
        .fail_token_requests(Provider::Twoba, StatusFault::new(500, 10));
    let reply = get(
        &p,
        "/twoba/1/json/x",
        &[&key(), "Tokenauth-Connection: nobody"],
    );
    assert_eq!(reply.status, 400, "{reply:?}");
    caller += &reply.raw;
    fx.emulator.revoke_all();
    let reply = get(&p, "/twoba/1/json/x", &[&key()]);
    assert!(reply.status >= 400, "{reply:?}");
    caller += &reply.raw;
    // The API hangs up: 502 without the URL's query.
    for path in ["/localq/close?a=1", "/localq/bighead?a=1"] {
        let reply = get(&p, path, &[&key()]);
        assert_eq!(reply.status, 502, "{path}: {reply:?}");
        assert_eq!(reply.proxy_error(), Some("upstream_error"), "{reply:?}");
        caller += &reply.raw;
    }
    let reply = get(&p, "/localq/short?a=1", &[&key()]);
    assert!(reply.status == 200 || reply.status == 0, "{reply:?}");
    caller += &reply.raw;
    let reply = get(&p, "/local/a/%2e%2e/x", &[&key()]);
    assert_eq!(reply.status, 400);
    caller += &reply.raw;

    let log = proxy.log();
    for secret in fx.secrets() {
        assert!(!caller.contains(&secret), "a caller saw a secret");
        assert!(!log.contains(&secret), "the log holds a secret:\n{log}");
    }
    assert!(!log.contains("page=2"), "{log}");
    fx.assert_api_saw_no_key();
    proxy.assert_alive();
}

// ------------------------------------------------------------ 4. panics

#[test]
fn odd_input_never_takes_the_proxy_down() {
    let fx = Fixture::new("odd");
    let mut proxy = fx.proxy("-vv", &["--retry-body-limit", "64"], &[]);
    let p = proxy.addr().to_owned();

    // Huge headers: refused by hyper (431) or the connection closed.
    let big = "x".repeat(1_000_000);
    let reply = get(&p, "/local/items", &[&key(), &format!("X-Big: {big}")]);
    assert!(reply.status == 431 || reply.status == 0, "{}", reply.status);
    let many: Vec<String> = (0..500).map(|i| format!("X-H{i}: v")).collect();
    let mut headers: Vec<&str> = many.iter().map(String::as_str).collect();
    let k = key();
    headers.push(&k);
    let reply = get(&p, "/local/items", &headers);
    assert!(
        reply.status == 431 || reply.status == 0 || reply.status == 200,
        "{}",
        reply.status
    );
    proxy.assert_alive();

    // Long paths: many segments, one huge segment, past hyper's limit.
    let segments = "s/".repeat(20_000);
    let reply = get(&p, &format!("/local/{segments}x"), &[&key()]);
    assert!(
        reply.status == 200 || reply.status == 400 || reply.status == 414,
        "{}",
        reply.status
    );
    for length in [60_000, 70_000, 1_000_000] {
        let reply = get(&p, &format!("/local/{}", "p".repeat(length)), &[&key()]);
        assert!(
            [200, 400, 414, 431, 0].contains(&reply.status),
            "{length}: {}",
            reply.status
        );
    }
    let reply = get(
        &p,
        &format!("/local/x?{}", "q=1&".repeat(20_000)),
        &[&key()],
    );
    assert!([200, 400, 414].contains(&reply.status), "{}", reply.status);
    proxy.assert_alive();

    // Connection names: not UTF-8, too long, control characters, a path.
    let long = format!("Tokenauth-Connection: {}", "n".repeat(100_000));
    for (header, status) in [
        (b"Tokenauth-Connection: t\xe9nant".to_vec(), 400),
        (long.into_bytes(), 431),
        (b"Tokenauth-Connection: \t".to_vec(), 400),
        (
            b"Tokenauth-Connection: ../../../../etc/passwd".to_vec(),
            400,
        ),
        (b"Tokenauth-Connection: a\x01b".to_vec(), 400),
    ] {
        let mut request =
            format!("GET /local/items HTTP/1.1\r\nHost: x\r\n{}\r\n", key()).into_bytes();
        request.extend_from_slice(&header);
        request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        let reply = send(&p, &request);
        assert!(
            reply.status == status || reply.status == 400 || reply.status == 0,
            "{}: {reply:?}",
            String::from_utf8_lossy(&header[..header.len().min(40)])
        );
    }
    // Invalid UTF-8 in the key and in ordinary headers.
    let reply = send(
        &p,
        b"GET /local/items HTTP/1.1\r\nHost: x\r\nTokenauth-Key: \xff\xfe\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(reply.status, 401);
    let mut request = format!(
        "GET /local/items HTTP/1.1\r\nHost: x\r\n{}\r\nX-Odd: ",
        key()
    )
    .into_bytes();
    request.extend_from_slice(b"\xff\r\nAuthorization: Bearer \xff\r\nConnection: close\r\n\r\n");
    let reply = send(&p, &request);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        fx.api
            .requests()
            .iter()
            .all(|r| r.target.starts_with("/v1/"))
    );

    // Chunked bodies with trailers, under and over the limit; a body with
    // a bad chunk size; Expect: 100-continue; HTTP/1.0.
    for size in [10usize, 100, 100_000] {
        let mut request = format!(
            "POST /local/items HTTP/1.1\r\nHost: x\r\n{}\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\nConnection: close\r\n\r\n{size:x}\r\n",
            key()
        )
        .into_bytes();
        request.extend(std::iter::repeat_n(b'b', size));
        request.extend_from_slice(b"\r\n0\r\nX-T: 1\r\n\r\n");
        let reply = send(&p, &request);
        assert_eq!(reply.status, 200, "{size}: {reply:?}");
        let seen = fx.api.last();
        assert_eq!(seen.raw.matches('b').count(), size, "{size}");
    }
    let reply = send(
        &p,
        format!(
            "POST /local/items HTTP/1.1\r\nHost: x\r\n{}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
            key()
        )
        .as_bytes(),
    );
    assert!(reply.status == 400 || reply.status == 0, "{reply:?}");
    // Content-Length and Transfer-Encoding both: no smuggling.
    let before = fx.api.requests().len();
    let mut request = format!(
        "POST /local/items HTTP/1.1\r\nHost: x\r\n{}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        key()
    )
    .into_bytes();
    let smuggled = format!(
        "GET /v1/smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{}",
        200,
        "c".repeat(200)
    );
    request.extend_from_slice(format!("{:x}\r\n", smuggled.len()).as_bytes());
    request.extend_from_slice(smuggled.as_bytes());
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    let reply = send(&p, &request);
    assert!(
        reply.status == 200 || reply.status == 400 || reply.status == 0,
        "{reply:?}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        fx.api.requests()[before..]
            .iter()
            .all(|r| r.target == "/v1/items"),
        "a request was smuggled: {:?}",
        fx.api.requests()
    );
    let reply = send(
        &p,
        format!(
            "POST /local/items HTTP/1.1\r\nHost: x\r\n{}\r\nExpect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
            key()
        )
        .as_bytes(),
    );
    assert!(reply.status == 100 || reply.status == 200, "{reply:?}");
    let reply = send(
        &p,
        format!("GET /local/items HTTP/1.0\r\n{}\r\n\r\n", key()).as_bytes(),
    );
    assert_eq!(reply.status, 200, "{reply:?}");

    // Early disconnects: in the head, in a buffered body, in a streamed
    // body, and while the API answers.
    for request in [
        format!("GET /local/items HTTP/1.1\r\nHost: x\r\n{}", key()),
        format!(
            "POST /local/items HTTP/1.1\r\nHost: x\r\n{}\r\nContent-Length: 50\r\n\r\nabc",
            key()
        ),
        format!(
            "POST /local/items HTTP/1.1\r\nHost: x\r\n{}\r\nContent-Length: 999999999999\r\n\r\n{}",
            key(),
            "d".repeat(1000)
        ),
        format!(
            "POST /local/items HTTP/1.1\r\nHost: x\r\n{}\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n{}",
            key(),
            "e".repeat(500)
        ),
        format!(
            "GET /reobtimaal/v1/projecten HTTP/1.1\r\nHost: x\r\n{}\r\n\r\n",
            key()
        ),
    ] {
        let mut stream = TcpStream::connect(&p).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        drop(stream);
    }
    std::thread::sleep(Duration::from_millis(500));
    // The API switches protocols unasked: not handed through as a tunnel.
    let reply = get(&p, "/local/switch", &[&key()]);
    assert_eq!(reply.status, 502, "{reply:?}");
    assert_eq!(reply.proxy_error(), Some("upstream_error"), "{reply:?}");
    assert!(!reply.raw.contains("another protocol"), "{reply:?}");
    // Garbage and HTTP/2 prior knowledge.
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /local/items HTTP/9.9\r\n\r\n",
        b"\r\n\r\n\r\n",
    ] {
        let _ = send(&p, garbage);
    }
    proxy.assert_alive();
}

// ------------------------------------------------------------ 5. caller credentials

#[test]
fn caller_credentials_are_stripped() {
    let fx = Fixture::new("strip");
    let mut proxy = fx.proxy("-v", &[], &[]);
    let p = proxy.addr().to_owned();
    let reply = get(
        &p,
        "/local/items",
        &[
            &key(),
            "Authorization: Bearer caller-credential",
            "authorization: Basic caller-credential",
            "X-Api-Key: caller-credential",
            "x-api-key: caller-credential-2",
            "Proxy-Authorization: Bearer caller-credential",
            "Tokenauth-Connection: default",
            "Tokenauth-Whatever: caller-credential",
            // CGI-style servers (Rack, PHP, WSGI) read `_` as `-`.
            "X_Api_Key: caller-credential",
            "Proxy_Authorization: Bearer caller-credential",
            "Tokenauth_Whatever: caller-credential",
        ],
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let seen = fx.api.last();
    assert!(!seen.raw.contains("caller-credential"), "{}", seen.raw);
    assert_eq!(
        seen.raw
            .to_ascii_lowercase()
            .matches(&format!("x-api-key: {LOCAL_KEY}"))
            .count(),
        1,
        "{}",
        seen.raw
    );
    assert!(!seen.raw.to_ascii_lowercase().contains("authorization"));

    // The query credential under every spelling of its name.
    for query in [
        "api_key=caller-credential",
        "a=1&api_key=caller-credential&b=2",
        "api%5Fkey=caller-credential",
        "api%5fkey=caller-credential&api_key=caller-credential",
        "api_key",
        "api_key=&x=1",
        "&&api_key=caller-credential&&",
        // `;` separates parameters to some servers (Rails, older Python).
        "a=1;api_key=caller-credential",
        "a=1;api%5Fkey=caller-credential;b=2&c=3",
        // Names as lenient servers read them: ASP.NET ignores case, PHP
        // reads `api.key`, `api key` and `api_key[]` as `api_key`.
        "API_KEY=caller-credential",
        "Api_Key=caller-credential&x=1",
        "api_key[]=caller-credential",
        "api_key%5B0%5D=caller-credential",
        "api.key=caller-credential",
        "api+key=caller-credential",
    ] {
        let reply = get(&p, &format!("/localq/items?{query}"), &[&key()]);
        assert_eq!(reply.status, 200, "{query}: {reply:?}");
        let seen = fx.api.last();
        assert!(
            !seen.target.contains("caller-credential"),
            "{}",
            seen.target
        );
        assert_eq!(
            seen.target.matches("api_key=").count(),
            1,
            "{query}: {}",
            seen.target
        );
        assert!(
            seen.target.contains(&format!("api_key={QUERY_KEY}")),
            "{}",
            seen.target
        );
    }
    fx.assert_api_saw_no_key();
    proxy.assert_alive();
}

// ------------------------------------------------------------ 6. hop by hop

#[test]
fn hop_by_hop_headers_stay_behind_both_ways() {
    let fx = Fixture::new("hop");
    let mut proxy = fx.proxy("-v", &[], &[]);
    let p = proxy.addr().to_owned();
    let request = format!(
        "GET /local/hop HTTP/1.1\r\nHost: x\r\n{}\r\nConnection: X-Hop-A, x-hop-b\r\nConnection: X-Hop-C, \u{e9}t\u{e9}\r\nX-Hop-A: 1\r\nX-Hop-B: 1\r\nX-Hop-C: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: websocket\r\nX-Kept: yes\r\n\r\n",
        key()
    )
    .into_bytes();
    let mut stream = TcpStream::connect(&p).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // Rebuild the line with the raw byte (format! wrote é as UTF-8).
    let text = String::from_utf8(request).unwrap();
    let mut bytes = Vec::new();
    for (i, part) in text.split("\u{e9}").enumerate() {
        if i > 0 {
            bytes.push(0xe9);
        }
        bytes.extend_from_slice(part.as_bytes());
    }
    stream.write_all(&bytes).unwrap();
    let reply = read_response(&mut stream);
    assert_eq!(reply.status, 200, "{reply:?}");
    let seen = fx.api.last().raw.to_ascii_lowercase();
    assert!(seen.contains("x-kept: yes"), "{seen}");
    for gone in [
        "x-hop-a:",
        "x-hop-b:",
        "x-hop-c:",
        "keep-alive:",
        "proxy-connection:",
        "\r\nte:",
        "upgrade:",
        "\r\nconnection: x-hop",
    ] {
        assert!(!seen.contains(gone), "{gone} was forwarded:\n{seen}");
    }
    // The API's: named by its Connection (one value not UTF-8), or
    // hop-by-hop by definition, or a forged proxy error.
    for gone in [
        "x-api-hop",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "tokenauth-error",
    ] {
        assert!(reply.header(gone).is_none(), "{gone} came back: {reply:?}");
    }
    assert_eq!(reply.body, "{\"ok\":true}");

    // The API frames its body twice (Content-Length and chunked): the
    // chunked body is the body, and its Content-Length must not come along
    // to cut it short; the next response on the connection is intact.
    stream
        .write_all(format!("GET /local/tecl HTTP/1.1\r\nHost: x\r\n{}\r\n\r\n", key()).as_bytes())
        .unwrap();
    let reply = read_response(&mut stream);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, "HELLO-WORLD-AND-MORE", "{reply:?}");
    stream
        .write_all(
            format!(
                "GET /local/items HTTP/1.1\r\nHost: x\r\n{}\r\nConnection: close\r\n\r\n",
                key()
            )
            .as_bytes(),
        )
        .unwrap();
    let next = read_response(&mut stream);
    assert_eq!(next.status, 200, "{next:?}");
    assert_eq!(next.body, "{\"ok\":true}", "{next:?}");
    fx.assert_api_saw_no_key();
    proxy.assert_alive();
}

// ------------------------------------------------------------ 7. --no-key and browsers

#[test]
fn without_a_key_web_pages_cannot_use_the_proxy() {
    let fx = Fixture::new("nokey");
    let mut proxy = fx.proxy("-v", &["--no-key"], &[("TOKENAUTH_PROXY_KEY", "")]);
    let p = proxy.addr().to_owned();
    let port = p.rsplit(':').next().unwrap().to_owned();
    let request = |host: Option<&str>, extra: &str| {
        let host = host.map_or_else(String::new, |h| format!("Host: {h}\r\n"));
        send(
            &p,
            format!("GET /local/items HTTP/1.1\r\n{host}{extra}Connection: close\r\n\r\n")
                .as_bytes(),
        )
    };
    // A page that rebound its own name to 127.0.0.1 (and so may read the
    // answer), or that sends a form or an image request from its origin.
    for (host, extra) in [
        (format!("evil.example:{port}"), ""),
        (format!("127.0.0.1.nip.example:{port}"), ""),
        (
            format!("127.0.0.1:{port}"),
            "Origin: http://evil.example\r\n",
        ),
        (format!("127.0.0.1:{port}"), "Origin: null\r\n"),
        (
            format!("localhost:{port}"),
            "Sec-Fetch-Site: cross-site\r\n",
        ),
    ] {
        let reply = request(Some(&host), extra);
        assert_eq!(reply.status, 403, "{host} {extra}: {reply:?}");
        assert_eq!(reply.proxy_error(), Some("not_local"), "{reply:?}");
    }
    assert!(fx.api.requests().is_empty(), "{:?}", fx.api.requests());
    // Nor the stats (which providers the user has, how busy).
    let reply = send(
        &p,
        format!("GET /_tokenauth/stats HTTP/1.1\r\nHost: evil.example:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(reply.status, 403, "{reply:?}");
    assert!(!reply.body.contains("reobtimaal"), "{reply:?}");
    // Local processes: a loopback Host (or none, HTTP/1.0), no page.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let reply = request(Some(&host), "User-Agent: python-urllib/3\r\n");
        assert_eq!(reply.status, 200, "{host}: {reply:?}");
    }
    let reply = send(&p, b"GET /local/items HTTP/1.0\r\n\r\n");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(fx.api.requests().len(), 4);
    proxy.assert_alive();
}
