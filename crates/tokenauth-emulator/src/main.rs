//! `tokenauth-emulator`: the seed providers on loopback until Ctrl-C.
//!
//! Run: `cargo run -p tokenauth-emulator -- --port 0 --tls-port 0`

use std::process::ExitCode;

use clap::Parser;
use tokenauth_emulator::{
    BRO_DEMO_PASSWORD, BRO_DEMO_USERNAME, Emulator, EmulatorConfig, Host, KEYSTONE_DOMAIN,
    KEYSTONE_PASSWORD, KEYSTONE_USERNAME, MILLIS_CLIENT_ID, MILLIS_CLIENT_SECRET,
    REOB_ADMIN_PASSWORD, REOB_ADMIN_USERNAME, REOB_DEMO_PASSWORD, REOB_DEMO_USERNAME,
    SESSION_PASSWORD, SESSION_USERNAME, Shape, TWOBA_DEMO_CLIENT_ID, TWOBA_DEMO_CLIENT_SECRET,
    TWOBA_DEMO_PASSWORD, TWOBA_DEMO_USERNAME,
};

/// REOBtimaal, 2BA and BRO emulated on 127.0.0.1, with fault injection.
#[derive(Parser, Debug)]
#[command(name = "tokenauth-emulator", version)]
struct Args {
    /// Port of the plain HTTP listener (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Also listen with TLS on this port (0: any free port), with a
    /// generated CA printed at start.
    #[arg(long)]
    tls_port: Option<u16>,
    /// Worker threads of the server runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokenauth-emulator: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let mut config = EmulatorConfig::default().port(args.port);
    if let Some(p) = args.tls_port {
        config = config.tls_port(p);
    }
    let emulator = match Emulator::start(config).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("tokenauth-emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_banner(&emulator);
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("tokenauth-emulator: cannot wait for Ctrl-C: {e}");
        return ExitCode::FAILURE;
    }
    println!("stopping");
    emulator.shutdown();
    ExitCode::SUCCESS
}

fn print_banner(e: &Emulator) {
    println!("tokenauth-emulator listening on http://{}", e.addr());
    if let Some(a) = e.tls_addr() {
        println!("TLS listener on https://{a} (real host names resolve there with the CA below)");
    }
    println!();
    println!("URLs (path-prefix form):");
    println!(
        "  REOBtimaal token  POST {}",
        e.url(Host::Reobtimaal, "/api/Token")
    );
    println!(
        "  REOBtimaal API    GET  {}",
        e.url(Host::Reobtimaal, "/api/v1/projecten")
    );
    println!(
        "  2BA token         POST {}",
        e.url(Host::TwobaAuthorize, "/OAuth/Token")
    );
    println!(
        "  2BA API           GET  {}",
        e.url(Host::Twoba, "/1/json/Product/DetailsForProduct")
    );
    println!(
        "  BRO API           POST {}",
        e.url(Host::Bro, "/api/v2/validatie")
    );
    for shape in Shape::ALL {
        println!(
            "  {:<17} POST {}",
            format!("{shape:?} token"),
            e.shape_url(shape, shape.token_path())
        );
    }
    println!("  control           GET  {}", e.control_url("stats"));
    if let Some(a) = e.tls_addr() {
        println!();
        println!("Real URLs via TLS: resolve each host name to {a}:");
        for h in Host::ALL {
            println!("  https://{}", h.hostname());
        }
    }
    println!();
    println!("Default accounts (fake):");
    println!("  REOBtimaal        {REOB_DEMO_USERNAME} / {REOB_DEMO_PASSWORD}");
    println!("  REOBtimaal admin  {REOB_ADMIN_USERNAME} / {REOB_ADMIN_PASSWORD}");
    println!("  2BA user          {TWOBA_DEMO_USERNAME} / {TWOBA_DEMO_PASSWORD}");
    println!("  2BA client        {TWOBA_DEMO_CLIENT_ID} / {TWOBA_DEMO_CLIENT_SECRET}");
    println!("  BRO               {BRO_DEMO_USERNAME} / {BRO_DEMO_PASSWORD}");
    println!(
        "  Keystone          {KEYSTONE_USERNAME} / {KEYSTONE_PASSWORD} (domain {KEYSTONE_DOMAIN})"
    );
    println!("  Session           {SESSION_USERNAME} / {SESSION_PASSWORD}");
    println!("  Millis client     {MILLIS_CLIENT_ID} / {MILLIS_CLIENT_SECRET}");
    println!(
        "  tenants           REOB/2BA tenant-<N> / tenant-<N>-secret; BRO tenant-<N>|bro / tenant-<N>-token"
    );
    if let Some(pem) = e.ca_cert_pem() {
        println!();
        println!("CA certificate:");
        print!("{pem}");
    }
    println!();
    println!("Press Ctrl-C to stop.");
}
