//! The `tokenauth-emulator` binary prints its addresses and accounts and
//! stops on Ctrl-C (SIGINT).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn binary_prints_addresses_and_accounts_and_stops_on_sigint() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenauth-emulator"))
        .args(["--port", "0", "--tls-port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the binary");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut banner = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("line");
        let done = line.starts_with("Press Ctrl-C");
        banner.push(line);
        if done {
            break;
        }
    }
    let text = banner.join("\n");
    let first = banner.first().cloned().unwrap_or_default();
    let base = first
        .strip_prefix("tokenauth-emulator listening on ")
        .unwrap_or_else(|| panic!("unexpected banner:\n{text}"))
        .to_owned();
    for needle in [
        "/reobtimaal/api/Token",
        "/2ba-authorize/OAuth/Token",
        "/2ba/1/json/",
        "/bro/api/v2/validatie",
        "https://api.reobtimaal-diensten.nl",
        "reob-demo / reob-demo-password",
        "reob-admin / reob-admin-password",
        "demo@2ba.example / 2ba-demo-password",
        "tokenauth-demo / 2ba-demo-client-secret",
        "0dce6fc98256|123456789|1234 / ",
        "BEGIN CERTIFICATE",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let status = rt.block_on(async {
        reqwest::get(format!("{base}/_emulator/stats"))
            .await
            .map(|r| r.status().as_u16())
    });

    // Ctrl-C: SIGINT to the child we started, by its id.
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !sent {
        let _ = child.kill();
    }
    let exit = child.wait().expect("wait");
    assert_eq!(status.ok(), Some(200));
    if sent {
        assert!(exit.success(), "{exit:?}");
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        assert!(rest.iter().any(|l| l == "stopping"), "{rest:?}");
    }
}
