//! `tokenauth login twoba` end to end: a real subprocess with the unchanged
//! root `providers.toml`, the emulator's 2BA authorize endpoint under its
//! real host name (`--resolve`, `--cacert`), and an HTTP client playing the
//! browser (follows the authorization URL, posts consent, follows the
//! redirect to the loopback listener). Then `tokenauth token twoba` renews
//! with the stored refresh token. Each bad input exits 1 and stores
//! nothing. Only 127.0.0.1; no timing assertions.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tokenauth_emulator::{
    Emulator, EmulatorConfig, TWOBA_DEMO_CLIENT_ID, TWOBA_DEMO_CLIENT_SECRET, TWOBA_DEMO_PASSWORD,
    TWOBA_DEMO_USERNAME,
};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

struct Fixture {
    emulator: Emulator,
    ca: PathBuf,
    store: PathBuf,
    rt: tokio::runtime::Runtime,
}

/// What the browser does with the authorization URL: returns the URL it
/// finally loads on the loopback listener (or `None`: it loads nothing).
type Browser<'a> = &'a dyn Fn(&Fixture, &str) -> Option<String>;

impl Fixture {
    fn new(name: &str) -> Self {
        let emulator = Emulator::start_on_own_runtime(EmulatorConfig::default().tls(true), 1)
            .expect("emulator");
        let base =
            std::env::temp_dir().join(format!("tokenauth-login-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let ca = base.join("ca.pem");
        std::fs::write(&ca, emulator.ca_cert_pem().expect("tls on")).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Fixture {
            emulator,
            ca,
            store: base.join("store"),
            rt,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenauth"));
        cmd.current_dir(root()).env_remove("TOKENAUTH_CONFIG");
        cmd.env_remove("TOKENAUTH_STORE").env("CI", "true");
        for (host, addr) in self.emulator.host_overrides() {
            cmd.arg("--resolve").arg(format!("{host}:443:{addr}"));
        }
        cmd.arg("--cacert").arg(&self.ca);
        cmd.arg("--store").arg(&self.store);
        cmd.args(args);
        for (k, v) in [
            ("TWOBA_USERNAME", TWOBA_DEMO_USERNAME),
            ("TWOBA_PASSWORD", TWOBA_DEMO_PASSWORD),
            ("TWOBA_CLIENT_ID", TWOBA_DEMO_CLIENT_ID),
            ("TWOBA_CLIENT_SECRET", TWOBA_DEMO_CLIENT_SECRET),
        ] {
            cmd.env(k, v);
        }
        cmd
    }

    /// `tokenauth login twoba EXTRA` with `browser` acting on the printed
    /// URL: exit code, stdout, stderr, and the page the browser was shown.
    fn login(&self, extra: &[&str], browser: Browser<'_>) -> (i32, String, String, String) {
        let mut args = vec!["-vvv", "login", "twoba", "--no-browser"];
        args.extend_from_slice(extra);
        // The login needs only the client's inputs, not the password
        // grant's.
        let mut child = self
            .command(&args)
            .env_remove("TWOBA_USERNAME")
            .env_remove("TWOBA_PASSWORD")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("run tokenauth login");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut err = String::new();
        let mut url = None;
        while url.is_none() {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if let Some(u) = line.trim().strip_prefix("https://") {
                url = Some(format!("https://{u}"));
            }
            err.push_str(&line);
        }
        let url = url.unwrap_or_else(|| panic!("no authorization URL printed:\n{err}"));
        let page = match browser(self, &url) {
            Some(callback) => self.get(&callback).1,
            None => String::new(),
        };
        let out = child.wait_with_output().unwrap();
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
        err.push_str(&rest);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        for secret in [TWOBA_DEMO_PASSWORD, TWOBA_DEMO_CLIENT_SECRET] {
            assert!(!format!("{stdout}{err}{page}").contains(secret));
        }
        (out.status.code().unwrap_or(-1), stdout, err, page)
    }

    fn client(&self) -> reqwest::Client {
        self.emulator
            .reqwest_client_builder()
            .unwrap()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    fn get(&self, url: &str) -> (u16, String) {
        self.rt.block_on(async {
            let r = self.client().get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        })
    }

    /// The consent page, then the person's answer: the `Location` it
    /// redirects to.
    fn consent(&self, url: &str, answer: &str) -> String {
        self.rt.block_on(async {
            let client = self.client();
            let page = client.get(url).send().await.unwrap();
            assert_eq!(page.status(), 200);
            assert!(page.text().await.unwrap().contains("<form"));
            let r = client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "username={}&password={}&consent={answer}",
                    TWOBA_DEMO_USERNAME.replace('@', "%40"),
                    TWOBA_DEMO_PASSWORD
                ))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 302);
            r.headers()["location"].to_str().unwrap().to_owned()
        })
    }

    /// The refresh token stored for twoba/default, if any.
    fn stored(&self) -> Option<String> {
        let key = tokenauth_core::store::StoreKey {
            provider: "twoba",
            connection: "default",
        };
        let path = tokenauth_core::store::FileStore::new(&self.store).path_for(&key);
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        record["refresh_token"].as_str().map(str::to_owned)
    }
}

fn allow(f: &Fixture, url: &str) -> Option<String> {
    Some(f.consent(url, "allow"))
}

/// `url` with query parameter `name` set to `value` (`None`: removed).
fn with_param(url: &str, name: &str, value: Option<&str>) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        if let Some(v) = value {
            q.append_pair(name, v);
        }
    }
    u.to_string()
}

#[test]
fn login_stores_a_refresh_token_that_token_then_rotates() {
    let f = Fixture::new("ok");
    let (code, out, err, page) = f.login(&[], &allow);
    assert_eq!(code, 0, "{out}{err}");
    let store = f.store.display().to_string();
    assert!(
        out.contains(&format!(
            "stored a refresh token for twoba/default in {store}"
        )) && out.contains("the access token expires"),
        "{out}"
    );
    assert!(page.contains("authorized"), "{page}");
    let first = f.stored().expect("a refresh token is stored");
    assert!(!format!("{out}{err}{page}").contains(&first));
    // The code exchange: PKCE verifier and redirect URI sent, once.
    let exchanges: Vec<_> = f
        .emulator
        .recorded_token_requests()
        .into_iter()
        .filter(|r| r.form_field("grant_type") == Some("authorization_code"))
        .collect();
    assert_eq!(exchanges.len(), 1);
    let ex = &exchanges[0];
    assert!(
        ex.form_field("code_verifier")
            .is_some_and(|v| v.len() == 43)
    );
    assert!(
        ex.form_field("redirect_uri")
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    // At TRACE level: no code, verifier or token in the output.
    let all = format!("{out}{err}{page}");
    assert!(err.contains("TRACE") || err.contains("DEBUG"), "{err}");
    for secret in ["code", "code_verifier"] {
        assert!(
            !all.contains(ex.form_field(secret).unwrap()),
            "{secret} leaked"
        );
    }

    // The next process uses the access token the login published to the
    // store, without a token request of its own...
    let out = f.command(&["token", "twoba"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("read from the shared store"), "{stdout}");
    // ...and renews with the stored refresh token, which rotates.
    let out = f.command(&["token", "twoba", "--renew"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("refreshed with the stored refresh token"),
        "{stdout}"
    );
    let second = f.stored().unwrap();
    assert_ne!(first, second, "rotated");
    let s = f.emulator.stats().twoba.token;
    assert_eq!(s.requests_by_grant.password, 0, "{s:?}");
    assert_eq!(s.requests_by_grant.refresh_token, 1, "{s:?}");
}

#[test]
fn consent_declined_exits_1_and_stores_nothing() {
    let f = Fixture::new("denied");
    let (code, out, err, page) = f.login(&[], &|f, url| Some(f.consent(url, "deny")));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("access_denied") && err.contains("consent was declined"),
        "{err}"
    );
    assert!(err.contains("nothing was stored"), "{err}");
    assert!(page.contains("could not complete"), "{page}");
    assert_eq!(f.stored(), None);
}

#[test]
fn a_wrong_or_missing_state_exits_1_and_stores_nothing() {
    let f = Fixture::new("state");
    let (code, _, err, _) = f.login(&[], &|f, url| {
        Some(with_param(&allow(f, url)?, "state", Some("forged")))
    });
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("`state` is not the one issued"), "{err}");
    let (code, _, err, _) = f.login(&[], &|f, url| {
        Some(with_param(&allow(f, url)?, "state", None))
    });
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("carries no `state`"), "{err}");
    assert_eq!(f.stored(), None);
    let exchanges = f
        .emulator
        .recorded_token_requests()
        .into_iter()
        .filter(|r| r.form_field("grant_type") == Some("authorization_code"))
        .count();
    assert_eq!(exchanges, 0, "no code was exchanged");
}

#[test]
fn a_reused_code_exits_1_and_keeps_the_stored_token() {
    let f = Fixture::new("reused");
    let first = std::cell::RefCell::new(String::new());
    let (code, _, err, _) = f.login(&[], &|f, url| {
        let callback = allow(f, url)?;
        *first.borrow_mut() = callback.clone();
        Some(callback)
    });
    assert_eq!(code, 0, "{err}");
    let stored = f.stored();
    // A second login gets the first one's code back (with its own state
    // and port, as an attacker replaying it would).
    let (code, _, err, _) = f.login(&[], &|f, url| {
        let fresh = url::Url::parse(&allow(f, url)?).unwrap();
        let old = url::Url::parse(&first.borrow()).unwrap();
        let old_code = old
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        Some(with_param(fresh.as_str(), "code", Some(&old_code)))
    });
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("code exchange") && err.contains("400"),
        "{err}"
    );
    assert_eq!(f.stored(), stored, "the stored token is untouched");
}

#[test]
fn another_path_gets_404_and_the_login_times_out() {
    let f = Fixture::new("path");
    let (code, _, err, _) = f.login(&["--timeout", "2s"], &|f, url| {
        let callback = allow(f, url)?;
        let other = callback.replacen("/callback", "/elsewhere", 1);
        assert_eq!(f.get(&other).0, 404);
        None
    });
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert_eq!(f.stored(), None);
}

#[test]
fn a_pasted_redirect_to_another_port_exits_1() {
    let f = Fixture::new("paste");
    let mut child = f
        .command(&["login", "twoba", "--paste", "--port", "8401"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut url = String::new();
    while !url.starts_with("https://") {
        url.clear();
        assert!(stderr.read_line(&mut url).unwrap() > 0);
        url = url.trim().to_owned();
    }
    let callback = allow(&f, &url).unwrap().replacen(":8401/", ":8402/", 1);
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        format!("{callback}\n").as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not to the redirect URI issued"), "{err}");
    assert_eq!(f.stored(), None);
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(base) = self.ca.parent() {
            let _ = std::fs::remove_dir_all(base);
        }
    }
}
