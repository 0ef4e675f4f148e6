//! [`EmulatorConfig`]: accounts, lifetimes and listeners, with documented defaults.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::host::Provider;

/// Default REOBtimaal user (no admin right: 403 on `/api/v1/beheer/...`).
pub const REOB_DEMO_USERNAME: &str = "reob-demo";
/// Password of [`REOB_DEMO_USERNAME`].
pub const REOB_DEMO_PASSWORD: &str = "reob-demo-password";
/// Default REOBtimaal user with the admin right (200 on `/api/v1/beheer/...`).
pub const REOB_ADMIN_USERNAME: &str = "reob-admin";
/// Password of [`REOB_ADMIN_USERNAME`].
pub const REOB_ADMIN_PASSWORD: &str = "reob-admin-password";
/// Default 2BA user.
pub const TWOBA_DEMO_USERNAME: &str = "demo@2ba.example";
/// Password of [`TWOBA_DEMO_USERNAME`].
pub const TWOBA_DEMO_PASSWORD: &str = "2ba-demo-password";
/// Default 2BA OAuth client id.
pub const TWOBA_DEMO_CLIENT_ID: &str = "tokenauth-demo";
/// Secret of [`TWOBA_DEMO_CLIENT_ID`].
pub const TWOBA_DEMO_CLIENT_SECRET: &str = "2ba-demo-client-secret";
/// Default BRO token username (note the `|` characters).
pub const BRO_DEMO_USERNAME: &str = "0dce6fc98256|123456789|1234";
/// Default BRO token password (64 hex characters).
pub const BRO_DEMO_PASSWORD: &str =
    "d476c6b8f056448deb4de2c37193b0bf3faa0090f4b19e81b5dcb65b752d0041";

/// The environment the repository's `providers.toml` reads its seed
/// providers' default connections from, set to the demo accounts: what a
/// `tokenauth` process pointed at the emulator needs.
pub const DEMO_ENV: [(&str, &str); 8] = [
    ("REOBTIMAAL_USERNAME", REOB_DEMO_USERNAME),
    ("REOBTIMAAL_PASSWORD", REOB_DEMO_PASSWORD),
    ("TWOBA_USERNAME", TWOBA_DEMO_USERNAME),
    ("TWOBA_PASSWORD", TWOBA_DEMO_PASSWORD),
    ("TWOBA_CLIENT_ID", TWOBA_DEMO_CLIENT_ID),
    ("TWOBA_CLIENT_SECRET", TWOBA_DEMO_CLIENT_SECRET),
    ("BRO_TOKEN_USERNAME", BRO_DEMO_USERNAME),
    ("BRO_TOKEN_PASSWORD", BRO_DEMO_PASSWORD),
];

/// The tenant username for number `n` of `provider`, accepted without
/// configuration while [`EmulatorConfig::tenant_accounts`] is on (the default).
///
/// REOBtimaal and 2BA: `tenant-<n>`; BRO: `tenant-<n>|bro`.
pub fn tenant_username(provider: Provider, n: u64) -> String {
    match provider {
        Provider::Bro => format!("tenant-{n}|bro"),
        Provider::Reobtimaal | Provider::Twoba => format!("tenant-{n}"),
    }
}

/// The password that goes with [`tenant_username`]`(provider, n)`.
///
/// REOBtimaal and 2BA: `tenant-<n>-secret` (2BA with the default client);
/// BRO: `tenant-<n>-token`.
pub fn tenant_password(provider: Provider, n: u64) -> String {
    match provider {
        Provider::Bro => format!("tenant-{n}-token"),
        Provider::Reobtimaal | Provider::Twoba => format!("tenant-{n}-secret"),
    }
}

/// A username/password pair (a user, an OAuth client or a BRO token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The user name, client id or BRO token username.
    pub username: String,
    /// The password, client secret or BRO token.
    pub password: String,
    /// REOBtimaal only: the user has the admin right (`/api/v1/beheer/...`).
    pub admin: bool,
}

impl Account {
    /// An account without admin right.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Account {
            username: username.into(),
            password: password.into(),
            admin: false,
        }
    }
}

/// Configuration of an [`Emulator`](crate::Emulator). Start from
/// [`EmulatorConfig::default()`] and chain the setters.
///
/// ```
/// use std::time::Duration;
/// use tokenauth_emulator::EmulatorConfig;
///
/// let config = EmulatorConfig::default()
///     .reob_token_lifetime(Duration::from_millis(200))
///     .tls(true);
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub(crate) bind_ip: IpAddr,
    pub(crate) port: u16,
    pub(crate) tls_port: Option<u16>,
    pub(crate) reob_users: Vec<Account>,
    pub(crate) twoba_users: Vec<Account>,
    pub(crate) twoba_clients: Vec<Account>,
    pub(crate) bro_tokens: Vec<Account>,
    pub(crate) tenant_accounts: bool,
    pub(crate) reob_token_lifetime: Duration,
    pub(crate) twoba_access_lifetime: Duration,
    pub(crate) twoba_refresh_lifetime: Duration,
    pub(crate) jwt_access_tokens: bool,
    pub(crate) record_limit: usize,
    pub(crate) api_record_limit: usize,
    pub(crate) api_latency: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            tls_port: None,
            reob_users: vec![
                Account::new(REOB_DEMO_USERNAME, REOB_DEMO_PASSWORD),
                Account {
                    admin: true,
                    ..Account::new(REOB_ADMIN_USERNAME, REOB_ADMIN_PASSWORD)
                },
            ],
            twoba_users: vec![Account::new(TWOBA_DEMO_USERNAME, TWOBA_DEMO_PASSWORD)],
            twoba_clients: vec![Account::new(TWOBA_DEMO_CLIENT_ID, TWOBA_DEMO_CLIENT_SECRET)],
            bro_tokens: vec![Account::new(BRO_DEMO_USERNAME, BRO_DEMO_PASSWORD)],
            tenant_accounts: true,
            reob_token_lifetime: Duration::from_secs(60 * 60),
            twoba_access_lifetime: Duration::from_secs(120),
            twoba_refresh_lifetime: Duration::from_secs(14 * 24 * 60 * 60),
            jwt_access_tokens: false,
            record_limit: 100,
            api_record_limit: 0,
            api_latency: Duration::ZERO,
        }
    }
}

impl EmulatorConfig {
    /// The IP address to bind. Must be a loopback address: starting the
    /// emulator with any other address fails. Defaults to `127.0.0.1`.
    pub fn bind_ip(mut self, ip: IpAddr) -> Self {
        self.bind_ip = ip;
        self
    }

    /// Port of the plain HTTP/1.1 listener. Defaults to 0 (any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Turns the TLS listener on (on port 0) or off. Defaults to off.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls_port = on.then_some(self.tls_port.unwrap_or(0));
        self
    }

    /// Turns the TLS listener on, on this port (0: any free port).
    /// Defaults to off.
    pub fn tls_port(mut self, port: u16) -> Self {
        self.tls_port = Some(port);
        self
    }

    /// Adds a REOBtimaal user. Defaults: [`REOB_DEMO_USERNAME`] (no admin
    /// right) and [`REOB_ADMIN_USERNAME`] (admin).
    pub fn reob_user(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
        admin: bool,
    ) -> Self {
        self.reob_users.push(Account {
            admin,
            ..Account::new(username, password)
        });
        self
    }

    /// Adds a 2BA user. Default: [`TWOBA_DEMO_USERNAME`].
    pub fn twoba_user(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.twoba_users.push(Account::new(username, password));
        self
    }

    /// Adds a 2BA OAuth client. Default: [`TWOBA_DEMO_CLIENT_ID`].
    pub fn twoba_client(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.twoba_clients
            .push(Account::new(client_id, client_secret));
        self
    }

    /// Adds a BRO token (username, token). Default: [`BRO_DEMO_USERNAME`].
    pub fn bro_token(mut self, username: impl Into<String>, token: impl Into<String>) -> Self {
        self.bro_tokens.push(Account::new(username, token));
        self
    }

    /// Removes all configured accounts and clients (the defaults included);
    /// tenant accounts stay as set by [`EmulatorConfig::tenant_accounts`].
    pub fn clear_accounts(mut self) -> Self {
        self.reob_users.clear();
        self.twoba_users.clear();
        self.twoba_clients.clear();
        self.bro_tokens.clear();
        self
    }

    /// Accept the tenant accounts of [`tenant_username`] and
    /// [`tenant_password`] without configuring them. Defaults to on.
    pub fn tenant_accounts(mut self, on: bool) -> Self {
        self.tenant_accounts = on;
        self
    }

    /// Lifetime of a REOBtimaal access token. Defaults to 60 minutes.
    pub fn reob_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.reob_token_lifetime = lifetime;
        self
    }

    /// Lifetime of a 2BA access token; `expires_in` is its whole seconds.
    /// Defaults to 120 seconds.
    pub fn twoba_access_lifetime(mut self, lifetime: Duration) -> Self {
        self.twoba_access_lifetime = lifetime;
        self
    }

    /// Lifetime of a 2BA refresh token. Defaults to 14 days.
    pub fn twoba_refresh_lifetime(mut self, lifetime: Duration) -> Self {
        self.twoba_refresh_lifetime = lifetime;
        self
    }

    /// Issue JWT-shaped access tokens (`header.payload.signature`, base64url,
    /// payload with `sub`, `iat` and `exp`) instead of opaque ones, for
    /// REOBtimaal and 2BA. Defaults to off.
    pub fn jwt_access_tokens(mut self, on: bool) -> Self {
        self.jwt_access_tokens = on;
        self
    }

    /// How many token requests to keep for
    /// [`Emulator::recorded_token_requests`](crate::Emulator::recorded_token_requests).
    /// Defaults to 100.
    pub fn record_limit(mut self, n: usize) -> Self {
        self.record_limit = n;
        self
    }

    /// How many API (non-token) requests to keep, exactly as received, for
    /// [`Emulator::recorded_api_requests`](crate::Emulator::recorded_api_requests):
    /// what a proxy or middleware really sent (headers included). Defaults
    /// to 0 (off: the API path takes no lock).
    pub fn record_api_requests(mut self, n: usize) -> Self {
        self.api_record_limit = n;
        self
    }

    /// Delay added to every API (non-token) request. Defaults to zero.
    pub fn api_latency(mut self, latency: Duration) -> Self {
        self.api_latency = latency;
        self
    }
}
