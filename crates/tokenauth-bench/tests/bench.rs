//! `tokenauth-bench --scenario all` as a user runs it, with tiny parameters:
//! it works, its JSON has every field for every variant, and the counts that
//! are deterministic (token requests in `burst`, the `tenants` fill) are
//! exact. Latencies and throughput are not asserted: benchmarks are not
//! timed tests.

use std::process::Command;

use serde_json::Value;

const VARIANT_FIELDS: [&str; 23] = [
    "name",
    "requests",
    "elapsed_s",
    "requests_per_s",
    "cpu_s",
    "cpu_us_per_request",
    "cpu_per_request_vs_plain",
    "latency_us",
    "errors",
    "errors_detail",
    "token_requests",
    "token_requests_per_round",
    "max_concurrent_token_requests",
    "expected_token_requests",
    "token_request_times_s",
    "token_request_times_truncated",
    "token_in_flight_s",
    "emulator_api_replies",
    "rounds",
    "memory",
    "during_token_requests",
    "max_latency_series_us",
    "requests_series",
];

const LATENCY_FIELDS: [&str; 5] = ["mean", "p50", "p99", "p999", "max"];

fn field<'a>(v: &'a Value, key: &str, what: &str) -> &'a Value {
    v.get(key)
        .unwrap_or_else(|| panic!("{what} has no `{key}`: {v:#}"))
}

fn counts(v: &Value) -> Vec<u64> {
    field(v, "token_requests_per_round", "variant")
        .as_array()
        .expect("an array")
        .iter()
        .map(|n| n.as_u64().expect("a count"))
        .collect()
}

#[test]
fn bench_all_with_tiny_parameters_reports_every_figure() {
    let dir = std::env::temp_dir().join(format!("tokenauth-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let svg = dir.join("bench.svg");
    let burst = 200;
    let out = Command::new(env!("CARGO_BIN_EXE_tokenauth-bench"))
        .args(["--scenario", "all", "--duration", "1s", "--workers", "4"])
        .args([
            "--connections",
            "50",
            "--burst",
            &burst.to_string(),
            "--rounds",
            "2",
        ])
        .args(["--token-latency", "20ms"])
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .env_remove("TOKENAUTH_CONFIG")
        .output()
        .expect("run tokenauth-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}; stderr:\n{stderr}",
        out.status
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    for heading in [
        "### steady",
        "### burst",
        "### rollover",
        "### tenants",
        "### targets",
    ] {
        assert!(stdout.contains(heading), "no {heading} in:\n{stdout}");
    }
    assert!(
        stdout.contains("| variant | requests | req/s | vs plain | CPU/req | CPU vs plain |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("tokenauth / plain CPU per request: "),
        "{stdout}"
    );

    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for key in ["tool", "machine", "command", "scenarios", "targets"] {
        field(&report, key, "the report");
    }
    let scenarios = report["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["steady", "burst", "rollover", "tenants"]);

    for s in scenarios {
        let name = s["name"].as_str().unwrap();
        for key in [
            "params",
            "variants",
            "tokenauth_vs_plain",
            "tokenauth_cpu_vs_plain",
            "notes",
        ] {
            field(s, key, name);
        }
        let variants: Vec<&str> = s["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        let expected: &[&str] = if name == "burst" {
            &["plain", "tokenauth", "mutex-baseline", "no-cache"]
        } else {
            &["plain", "tokenauth", "mutex-baseline"]
        };
        assert_eq!(variants, expected, "{name}");
        for v in s["variants"].as_array().unwrap() {
            let what = format!("{name}/{}", v["name"]);
            for key in VARIANT_FIELDS {
                field(v, key, &what);
            }
            for key in LATENCY_FIELDS {
                assert!(
                    field(&v["latency_us"], key, &what).is_number(),
                    "{what}.{key}"
                );
            }
            assert!(v["requests"].as_u64().unwrap() > 0, "{what}: no requests");
            assert_eq!(v["errors"], 0, "{what}: errors: {v:#}");
            assert_eq!(v["rounds"].as_array().unwrap().len(), 2, "{what}");
            assert!(
                !v["max_latency_series_us"].as_array().unwrap().is_empty(),
                "{what}"
            );
        }
    }

    // steady: the client's CPU per request, for every variant and round, is
    // measured and positive (this is Linux: the process clock is there).
    for v in scenarios[0]["variants"].as_array().unwrap() {
        let what = format!("steady/{}", v["name"]);
        let positive = |x: &Value| x.as_f64().is_some_and(|x| x > 0.0);
        assert!(positive(&v["cpu_s"]), "{what}: cpu_s {}", v["cpu_s"]);
        assert!(
            positive(&v["cpu_us_per_request"]),
            "{what}: cpu_us_per_request {}",
            v["cpu_us_per_request"]
        );
        assert!(
            positive(&v["cpu_per_request_vs_plain"]),
            "{what}: cpu_per_request_vs_plain {}",
            v["cpu_per_request_vs_plain"]
        );
        for r in v["rounds"].as_array().unwrap() {
            assert!(positive(&r["cpu_us_per_request"]), "{what}: {r:#}");
        }
    }
    assert_eq!(
        scenarios[0]["variants"][0]["cpu_per_request_vs_plain"], 1.0,
        "plain over itself"
    );

    // burst: one token request per burst through the cache, one per request without.
    let burst_v = &scenarios[1]["variants"];
    let by = |n: &str| {
        burst_v
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == n)
            .unwrap()
    };
    assert_eq!(counts(by("plain")), [0, 0]);
    assert_eq!(counts(by("tokenauth")), [1, 1]);
    assert_eq!(counts(by("mutex-baseline")), [1, 1]);
    assert_eq!(counts(by("no-cache")), [burst, burst]);
    assert_eq!(by("tokenauth")["requests"], 2 * burst);

    // tenants: every connection fetched exactly once, memory figures present.
    for v in scenarios[3]["variants"].as_array().unwrap() {
        let m = &v["memory"];
        if v["name"] == "plain" {
            assert!(m.is_null());
            continue;
        }
        for key in [
            "tokens",
            "rss_before_bytes",
            "rss_after_fill_bytes",
            "rss_after_bytes",
            "bytes_per_token",
            "fill_s",
            "fill_token_requests",
            "touch_token_requests",
            "fill_errors",
            "includes",
        ] {
            field(m, key, "memory");
        }
        assert_eq!(m["tokens"], 50);
        assert_eq!(m["fill_token_requests"], 50);
        assert_eq!(m["touch_token_requests"], 0);
        assert_eq!(m["fill_errors"], 0);
        // Two rounds, each a fresh process that fills 50 connections.
        for r in v["rounds"].as_array().unwrap() {
            assert_eq!(r["memory"]["fill_token_requests"], 50, "{r:#}");
        }
        // Filled in the fill: no token request while measured.
        assert_eq!(v["token_requests"], 0);
    }

    let targets = report["targets"].as_array().unwrap();
    assert!(targets.iter().all(|t| t["met"].is_boolean()));
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg"), "{}", &plot[..plot.len().min(200)]);
    let _ = std::fs::remove_dir_all(&dir);
}
