//! `tokenauth login PROVIDER --device` end to end: a real subprocess against
//! the emulator's device fixture. The test reads the user code off the
//! CLI's output and approves it over HTTP (as the person would in a
//! browser) while the CLI polls; then `tokenauth token` renews with the
//! refresh token the login stored. Denial: exit 1, nothing stored.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokenauth_emulator::{DEVICE_CLIENT_ID, Emulator, EmulatorConfig};

fn description(emu: &Emulator) -> String {
    format!(
        r#"
[providers.dev]
api = ["{api}"]
inputs.client_id = {{ default = "{DEVICE_CLIENT_ID}" }}

[providers.dev.device]
url = "{code}"
scopes = ["read", "offline_access"]
fields = {{ client_id = "{{{{ inputs.client_id }}}}" }}

[providers.dev.refresh]
url = "{token}"
fields = {{ grant_type = "refresh_token", refresh_token = "{{{{ token.refresh }}}}", client_id = "{{{{ inputs.client_id }}}}" }}
rotate = true

[providers.dev.response]
refresh_token = "/refresh_token"
expires_in = "/expires_in"

[providers.dev.inject]
header = "Authorization"
value = "Bearer {{{{ token.access }}}}"
"#,
        api = emu.device_url("/api/"),
        code = emu.device_url("/oauth/device/code"),
        token = emu.device_url("/oauth/token"),
    )
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tokenauth-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `POST /device/{action}` with `user_code`, over plain HTTP: what the
/// person's browser does. Returns the status line.
fn decide(emu: &Emulator, action: &str, user_code: &str) -> String {
    let mut s = TcpStream::connect(emu.addr()).unwrap();
    let body = format!("user_code={user_code}");
    write!(
        s,
        "POST /device/{action} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply.lines().next().unwrap_or_default().to_owned()
}

/// Runs `tokenauth login dev --device`, handing the user code to `person`
/// once the CLI prints it; returns (exit code, stdout, stderr).
fn login(config: &str, store: &str, person: impl FnOnce(&str)) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenauth"))
        .args([
            "--config", config, "--store", store, "login", "dev", "--device",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tokenauth");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut out = String::new();
    let mut person = Some(person);
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(code) = line.strip_prefix("enter code: ")
            && let Some(person) = person.take()
        {
            person(code.trim());
        }
        out.push_str(&line);
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), out, err)
}

#[test]
fn login_device_then_token_with_the_stored_refresh_token() {
    let emu = Emulator::start_on_own_runtime(EmulatorConfig::default(), 1).expect("emulator");
    emu.set_device_interval(Duration::from_millis(100));
    let tmp = Scratch::new("login-device");
    let config = tmp.0.join("providers.toml");
    std::fs::write(&config, description(&emu)).unwrap();
    let config = config.display().to_string();
    let store = tmp.0.join("store").display().to_string();

    // Nothing stored yet: `token` points at the device flow.
    let first = Command::new(env!("CARGO_BIN_EXE_tokenauth"))
        .args(["--config", &config, "--store", &store, "token", "dev"])
        .output()
        .unwrap();
    assert_eq!(first.status.code(), Some(2));
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(err.contains("tokenauth login dev --device"), "{err}");

    let (code, out, err) = login(&config, &store, |user_code| {
        // Let the CLI poll a few times first (authorization_pending).
        while emu.device_stats().polls < 2 {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(decide(&emu, "approve", user_code).contains(" 200 "));
    });
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("open:       http://"), "{out}");
    assert!(out.contains("/device/activate"), "{out}");
    assert!(out.contains("approved."), "{out}");
    assert!(
        out.contains("stored:     the refresh token for `dev`, connection `default`"),
        "{out}"
    );
    assert!(emu.device_stats().polls >= 3, "{:?}", emu.device_stats());
    let all = format!("{out}{err}");
    assert!(
        !all.contains("dc-") && !all.contains("device-at-") && !all.contains("device-rt-"),
        "no device code or token in the output:\n{all}"
    );

    // A new process uses the token the login published, then renews with
    // the stored refresh token (and keeps the rotated one).
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tokenauth"))
            .args(["--config", &config, "--store", &store])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["token", "dev"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("read from the shared store"), "{out}");
    assert_eq!(emu.device_stats().refreshes, 0);
    let (code, out, err) = run(&["token", "dev", "--renew"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("refreshed with the stored refresh token"),
        "{out}"
    );
    assert_eq!(emu.device_stats().refreshes, 1);
    let (code, out, err) = run(&["token", "dev", "--renew"]);
    assert_eq!(code, 0, "the rotated token was kept: {out}{err}");
    assert_eq!(emu.device_stats().refreshes, 2);
}

#[test]
fn login_device_denied_exits_1_and_stores_nothing() {
    let emu = Emulator::start_on_own_runtime(EmulatorConfig::default(), 1).expect("emulator");
    emu.set_device_interval(Duration::from_millis(100));
    let tmp = Scratch::new("login-device-denied");
    let config = tmp.0.join("providers.toml");
    std::fs::write(&config, description(&emu)).unwrap();
    let config = config.display().to_string();
    let store = tmp.0.join("store");
    let (code, out, err) = login(&config, &store.display().to_string(), |user_code| {
        assert!(decide(&emu, "deny", user_code).contains(" 200 "));
    });
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("denied") && err.contains("nothing was stored"),
        "{err}"
    );
    let files = std::fs::read_dir(&store).map_or(0, |d| d.count());
    assert_eq!(files, 0, "nothing stored");
}

#[test]
fn explain_shows_the_device_request() {
    let emu = Emulator::start_on_own_runtime(EmulatorConfig::default(), 1).expect("emulator");
    let tmp = Scratch::new("explain-device");
    let config = tmp.0.join("providers.toml");
    std::fs::write(&config, description(&emu)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokenauth"))
        .args(["--config", &config.display().to_string(), "explain", "dev"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("device authorization request (`tokenauth login dev --device`")
            && text.contains("/device/oauth/device/code")
            && text.contains("scope=read+offline_access"),
        "{text}"
    );
}

#[test]
fn login_without_device_or_device_table_says_what_to_do() {
    let emu = Emulator::start_on_own_runtime(EmulatorConfig::default(), 1).expect("emulator");
    let tmp = Scratch::new("login-no-device");
    let config = tmp.0.join("providers.toml");
    std::fs::write(&config, description(&emu)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokenauth"))
        .args(["--config", &config.display().to_string(), "login", "dev"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("it offers the device grant: tokenauth login dev --device"),
        "{err}"
    );
}
