//! Start, stop, own runtime, loopback only.

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use tokenauth_emulator::{Emulator, EmulatorConfig, Host};

use crate::helpers::*;

#[tokio::test]
async fn non_loopback_bind_is_refused() {
    for ip in [
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)),
        "::".parse().expect("ip"),
    ] {
        let err = Emulator::start(EmulatorConfig::default().bind_ip(ip))
            .await
            .expect_err("must refuse");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("loopback"), "{err}");
        let err = Emulator::start_on_own_runtime(EmulatorConfig::default().bind_ip(ip), 1)
            .expect_err("must refuse");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}

#[tokio::test]
async fn binds_127_0_0_1_by_default_and_stops_on_drop() {
    let e = start().await;
    let addr = e.addr();
    assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_ne!(addr.port(), 0);
    reob_token(&e, &client()).await;
    e.shutdown();
    tokio::task::yield_now().await;
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    // The listener task sees the shutdown and closes the socket.
    let mut refused = false;
    for _ in 0..100 {
        if fresh
            .get(format!("http://{addr}/_emulator/stats"))
            .send()
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(refused);
}

#[test]
fn own_runtime_works_without_a_caller_runtime() {
    let e = Emulator::start_on_own_runtime(EmulatorConfig::default(), 2).expect("start");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let addr = e.addr();
    rt.block_on(async {
        let c = client();
        let token = reob_token(&e, &c).await;
        let r = get_bearer(
            &c,
            &e.url(Host::Reobtimaal, "/api/v1/projecten"),
            &format!("bearer {token}"),
        )
        .await;
        assert_eq!(r.status, 200);
    });
    assert_eq!(e.stats().reobtimaal.api.requests, 1);
    drop(e); // joins the server thread
    rt.block_on(async {
        let c = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        assert!(
            c.get(format!("http://{addr}/_emulator/stats"))
                .send()
                .await
                .is_err()
        );
    });
}

#[tokio::test]
async fn own_runtime_can_start_and_stop_inside_a_runtime() {
    let e = Emulator::start_on_own_runtime(EmulatorConfig::default().tls(true), 1).expect("start");
    assert!(e.tls_addr().is_some());
    reob_token(&e, &client()).await;
    drop(e);
}
