//! Server state: accounts, issued tokens, knobs, counters, recorded requests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::config::{Account, EmulatorConfig};
use crate::faults::{Knobs, Latency};
use crate::host::Provider;
use crate::stats::Counters;

/// One token request exactly as received, from
/// [`Emulator::recorded_token_requests`](crate::Emulator::recorded_token_requests)
/// and `GET /_emulator/requests` (a JSON array of these, oldest first).
///
/// JSON shape:
/// ```json
/// {
///   "provider": "reobtimaal",
///   "method": "POST",
///   "host": "api.reobtimaal-diensten.nl",
///   "path": "/reobtimaal/api/Token",
///   "headers": [["host", "127.0.0.1:4321"], ["content-type", "application/x-www-form-urlencoded"]],
///   "body": "grant-type=password&username=reob-demo&Password=reob-demo-password",
///   "form": [["grant-type", "password"], ["username", "reob-demo"], ["Password", "reob-demo-password"]]
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The provider whose token endpoint (or API) received it.
    pub provider: Provider,
    /// The HTTP method.
    pub method: String,
    /// The real host name the request was routed to.
    pub host: String,
    /// Path and query exactly as received (with the `/reobtimaal`-style
    /// prefix when it was used).
    pub path: String,
    /// Headers in the order received (names lower-cased by the HTTP parser;
    /// repeated names grouped together); values decoded lossily as UTF-8.
    pub headers: Vec<(String, String)>,
    /// The raw body, decoded lossily as UTF-8.
    pub body: String,
    /// Form fields in order, percent-decoded; empty unless the content type
    /// is `application/x-www-form-urlencoded`.
    pub form: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The first form field with exactly this (case-sensitive) name.
    pub fn form_field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first header with this name (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An issued access token.
#[derive(Clone)]
pub(crate) struct AccessEntry {
    pub(crate) user: Arc<str>,
    pub(crate) admin: bool,
    expires_at: Instant,
    /// The order of issue (per provider), for [`ProviderState::superseded`].
    serial: u64,
}

const SHARDS: usize = 32;

type Shard = RwLock<HashMap<Box<str>, AccessEntry>>;

/// Access tokens of one provider, sharded so API requests rarely contend.
pub(crate) struct TokenStore {
    shards: Box<[Shard]>,
    inserts: AtomicU64,
}

fn shard_of(token: &str) -> usize {
    // FNV-1a over the last bytes (random in both opaque and JWT tokens).
    let bytes = token.as_bytes();
    let tail = &bytes[bytes.len().saturating_sub(8)..];
    let mut h: u32 = 0x811c_9dc5;
    for &b in tail {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h as usize % SHARDS
}

impl TokenStore {
    fn new() -> Self {
        TokenStore {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            inserts: AtomicU64::new(0),
        }
    }

    fn shard(&self, token: &str) -> &Shard {
        &self.shards[shard_of(token)]
    }

    /// Stores a new access token; returns its serial (order of issue).
    fn insert(&self, token: &str, user: Arc<str>, admin: bool, lifetime: Duration) -> u64 {
        let now = Instant::now();
        let serial = self.inserts.fetch_add(1, Relaxed);
        let entry = AccessEntry {
            user,
            admin,
            expires_at: now.checked_add(lifetime).unwrap_or(now + YEARS),
            serial,
        };
        let mut map = self
            .shard(token)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Now and then drop expired tokens so long runs do not grow forever.
        if serial % 256 == 255 {
            map.retain(|_, e| e.expires_at > now);
        }
        map.insert(token.into(), entry);
        serial
    }

    /// The live (unexpired) entry for this token.
    pub(crate) fn get(&self, token: &str) -> Option<AccessEntry> {
        let map = self
            .shard(token)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let e = map.get(token)?;
        (Instant::now() < e.expires_at).then(|| e.clone())
    }

    fn clear(&self) {
        for s in self.shards.iter() {
            s.write().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }
}

const YEARS: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A 2BA refresh token.
pub(crate) struct RefreshEntry {
    user: Arc<str>,
    client_id: Arc<str>,
    expires_at: Instant,
    used: bool,
}

/// Why a refresh token was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RefreshError {
    Unknown,
    Reused,
    Expired,
    WrongClient,
}

/// Per-provider state.
pub(crate) struct ProviderState {
    pub(crate) counters: Counters,
    pub(crate) knobs: Mutex<Knobs>,
    pub(crate) tokens: TokenStore,
    /// Per user, the serial of the access token that revoked the user's
    /// earlier ones (`revoke_on_reissue`).
    superseded_below: RwLock<HashMap<Arc<str>, u64>>,
}

impl ProviderState {
    /// True when a newer access token issued with `revoke_on_reissue` on
    /// has revoked this one.
    pub(crate) fn superseded(&self, entry: &AccessEntry) -> bool {
        self.superseded_below
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&entry.user)
            .is_some_and(|&below| entry.serial < below)
    }

    fn clear_tokens(&self) {
        self.tokens.clear();
        self.superseded_below
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// A token grant issued by a token endpoint.
pub(crate) struct Issued {
    pub(crate) access_token: String,
    pub(crate) expires_in: u64,
    pub(crate) refresh_token: Option<String>,
}

/// The whole server state, shared by the handle and the connection tasks.
pub(crate) struct State {
    pub(crate) config: EmulatorConfig,
    reob_users: HashMap<String, Account>,
    twoba_users: HashMap<String, String>,
    twoba_clients: HashMap<String, String>,
    bro_tokens: HashMap<String, String>,
    providers: [ProviderState; 3],
    refresh: Mutex<HashMap<Box<str>, RefreshEntry>>,
    pub(crate) api_latency_nanos: AtomicU64,
    bro_revoked_all: AtomicBool,
    bro_any_revoked: AtomicBool,
    bro_revoked: RwLock<HashSet<String>>,
    recorded: Mutex<VecDeque<RecordedRequest>>,
    /// The last API requests, when [`EmulatorConfig::record_api_requests`]
    /// asks for them.
    recorded_api: Mutex<VecDeque<RecordedRequest>>,
    /// The documented reply shapes (Keystone, cookie session, milliseconds).
    pub(crate) shapes: crate::shapes::Shapes,
    /// The device authorization grant fixture.
    pub(crate) device: crate::device::DeviceFixture,
    /// 2BA's authorization codes.
    pub(crate) codes: crate::authorize::Codes,
}

fn initial_knobs(config: &EmulatorConfig, p: Provider) -> Knobs {
    let (access, refresh) = match p {
        Provider::Reobtimaal => (config.reob_token_lifetime, Duration::ZERO),
        Provider::Twoba => (config.twoba_access_lifetime, config.twoba_refresh_lifetime),
        Provider::Bro => (Duration::ZERO, Duration::ZERO),
    };
    Knobs {
        latency: Latency::None,
        reply_delay: Duration::ZERO,
        status: None,
        api_status: None,
        reply: None,
        access_lifetime: access,
        refresh_lifetime: refresh,
        jwt: config.jwt_access_tokens && p != Provider::Bro,
        revoke_on_reissue: false,
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl State {
    pub(crate) fn new(config: EmulatorConfig) -> Self {
        let provider = |p| ProviderState {
            counters: Counters::new(),
            knobs: Mutex::new(initial_knobs(&config, p)),
            tokens: TokenStore::new(),
            superseded_below: RwLock::new(HashMap::new()),
        };
        let pairs = |v: &[Account]| {
            v.iter()
                .map(|a| (a.username.clone(), a.password.clone()))
                .collect::<HashMap<_, _>>()
        };
        State {
            reob_users: config
                .reob_users
                .iter()
                .map(|a| (a.username.clone(), a.clone()))
                .collect(),
            twoba_users: pairs(&config.twoba_users),
            twoba_clients: pairs(&config.twoba_clients),
            bro_tokens: pairs(&config.bro_tokens),
            providers: [
                provider(Provider::Reobtimaal),
                provider(Provider::Twoba),
                provider(Provider::Bro),
            ],
            refresh: Mutex::new(HashMap::new()),
            api_latency_nanos: AtomicU64::new(duration_nanos(config.api_latency)),
            bro_revoked_all: AtomicBool::new(false),
            bro_any_revoked: AtomicBool::new(false),
            bro_revoked: RwLock::new(HashSet::new()),
            recorded: Mutex::new(VecDeque::new()),
            recorded_api: Mutex::new(VecDeque::new()),
            shapes: crate::shapes::Shapes::default(),
            device: crate::device::DeviceFixture::default(),
            codes: Default::default(),
            config,
        }
    }

    pub(crate) fn provider(&self, p: Provider) -> &ProviderState {
        &self.providers[p.index()]
    }

    pub(crate) fn set_api_latency(&self, d: Duration) {
        self.api_latency_nanos.store(duration_nanos(d), Relaxed);
    }

    // ---- accounts ----

    /// `Some(admin)` if this REOBtimaal user/password pair is valid.
    pub(crate) fn check_reob_user(&self, user: &str, password: &str) -> Option<bool> {
        if let Some(a) = self.reob_users.get(user) {
            return (a.password == password).then_some(a.admin);
        }
        self.is_tenant(user, password, "-secret").then_some(false)
    }

    pub(crate) fn check_twoba_user(&self, user: &str, password: &str) -> bool {
        match self.twoba_users.get(user) {
            Some(p) => p == password,
            None => self.is_tenant(user, password, "-secret"),
        }
    }

    /// `None`: unknown client; `Some(ok)`: whether the secret matches.
    pub(crate) fn check_twoba_client(&self, id: &str, secret: &str) -> Option<bool> {
        self.twoba_clients.get(id).map(|s| s == secret)
    }

    pub(crate) fn check_bro(&self, user: &str, password: &str) -> bool {
        let known = match self.bro_tokens.get(user) {
            Some(p) => p == password,
            None => user
                .strip_suffix("|bro")
                .is_some_and(|base| self.is_tenant(base, password, "-token")),
        };
        if !known || self.bro_revoked_all.load(Relaxed) {
            return false;
        }
        if self.bro_any_revoked.load(Relaxed) {
            let revoked = self
                .bro_revoked
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            return !revoked.contains(user);
        }
        true
    }

    /// `tenant-<N>` with password `tenant-<N><suffix>`.
    fn is_tenant(&self, user: &str, password: &str, suffix: &str) -> bool {
        if !self.config.tenant_accounts {
            return false;
        }
        let Some(n) = user.strip_prefix("tenant-") else {
            return false;
        };
        !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && password
                .strip_prefix(user)
                .is_some_and(|rest| rest == suffix)
    }

    // ---- tokens ----

    /// Issues an access token (and for 2BA a refresh token) for `user`.
    pub(crate) fn issue(
        &self,
        p: Provider,
        user: Arc<str>,
        admin: bool,
        client_id: Option<Arc<str>>,
    ) -> Issued {
        let (lifetime, refresh_lifetime, jwt, revoke) = {
            let k = lock(&self.provider(p).knobs);
            (
                k.access_lifetime,
                k.refresh_lifetime,
                k.jwt,
                k.revoke_on_reissue,
            )
        };
        let access_token = if jwt {
            jwt_token(&user, lifetime)
        } else {
            random_token(40)
        };
        let ps = self.provider(p);
        let serial = ps
            .tokens
            .insert(&access_token, user.clone(), admin, lifetime);
        if revoke {
            ps.superseded_below
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(user.clone(), serial);
        }
        let refresh_token = client_id.map(|client_id| {
            let t = random_token(48);
            let now = Instant::now();
            lock(&self.refresh).insert(
                t.as_str().into(),
                RefreshEntry {
                    user,
                    client_id,
                    expires_at: now.checked_add(refresh_lifetime).unwrap_or(now + YEARS),
                    used: false,
                },
            );
            t
        });
        Issued {
            access_token,
            expires_in: lifetime.as_secs(),
            refresh_token,
        }
    }

    /// Uses up a refresh token: the user it was issued to, or why not.
    pub(crate) fn use_refresh(
        &self,
        token: &str,
        client_id: &str,
    ) -> Result<Arc<str>, RefreshError> {
        let mut map = lock(&self.refresh);
        let Some(e) = map.get_mut(token) else {
            return Err(RefreshError::Unknown);
        };
        if e.used {
            return Err(RefreshError::Reused);
        }
        if Instant::now() >= e.expires_at {
            map.remove(token);
            return Err(RefreshError::Expired);
        }
        if &*e.client_id != client_id {
            return Err(RefreshError::WrongClient);
        }
        e.used = true;
        Ok(e.user.clone())
    }

    // ---- revocation and reset ----

    /// Revokes all tokens of `p` (all providers if `None`).
    pub(crate) fn revoke(&self, p: Option<Provider>) {
        for prov in Provider::ALL {
            if p.is_some_and(|p| p != prov) {
                continue;
            }
            self.provider(prov).clear_tokens();
            match prov {
                Provider::Twoba => lock(&self.refresh).clear(),
                Provider::Bro => self.bro_revoked_all.store(true, Relaxed),
                Provider::Reobtimaal => {}
            }
        }
    }

    pub(crate) fn revoke_bro_token(&self, username: &str) {
        self.bro_revoked
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(username.to_owned());
        self.bro_any_revoked.store(true, Relaxed);
    }

    pub(crate) fn reset_stats(&self) {
        for p in &self.providers {
            p.counters.reset();
        }
    }

    /// Back to the state right after start.
    pub(crate) fn reset(&self) {
        for p in Provider::ALL {
            *lock(&self.provider(p).knobs) = initial_knobs(&self.config, p);
            self.provider(p).clear_tokens();
        }
        lock(&self.refresh).clear();
        self.bro_revoked_all.store(false, Relaxed);
        self.bro_any_revoked.store(false, Relaxed);
        self.bro_revoked
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.set_api_latency(self.config.api_latency);
        lock(&self.recorded).clear();
        lock(&self.recorded_api).clear();
        self.shapes.reset();
        self.reset_stats();
    }

    // ---- recording ----

    pub(crate) fn record(&self, r: RecordedRequest) {
        push_bounded(&self.recorded, self.config.record_limit, r);
    }

    /// True when API requests are recorded.
    pub(crate) fn records_api(&self) -> bool {
        self.config.api_record_limit > 0
    }

    pub(crate) fn record_api(&self, r: RecordedRequest) {
        push_bounded(&self.recorded_api, self.config.api_record_limit, r);
    }

    pub(crate) fn recorded_api(&self) -> Vec<RecordedRequest> {
        lock(&self.recorded_api).iter().cloned().collect()
    }

    pub(crate) fn recorded(&self) -> Vec<RecordedRequest> {
        lock(&self.recorded).iter().cloned().collect()
    }

    pub(crate) fn clear_recorded(&self) {
        lock(&self.recorded).clear();
    }
}

/// Appends `r`, dropping the oldest beyond `limit` (0: keeps nothing).
fn push_bounded(queue: &Mutex<VecDeque<RecordedRequest>>, limit: usize, r: RecordedRequest) {
    if limit == 0 {
        return;
    }
    let mut q = lock(queue);
    while q.len() >= limit {
        q.pop_front();
    }
    q.push_back(r);
}

/// A random alphanumeric token of `len` characters.
pub(crate) fn random_token(len: usize) -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(len)
        .collect()
}

fn jwt_token(user: &str, lifetime: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let exp = now.saturating_add(lifetime);
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = serde_json::json!({
        "sub": user,
        "iat": now.as_secs(),
        "exp": exp.as_secs(),
        "jti": random_token(16),
    });
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    let sig: Vec<u8> = std::iter::repeat_with(|| fastrand::u8(..))
        .take(32)
        .collect();
    format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants() {
        let s = State::new(EmulatorConfig::default());
        assert_eq!(
            s.check_reob_user("tenant-7", "tenant-7-secret"),
            Some(false)
        );
        assert_eq!(s.check_reob_user("tenant-7", "tenant-8-secret"), None);
        assert_eq!(s.check_reob_user("tenant-", "tenant--secret"), None);
        assert!(s.check_twoba_user("tenant-12", "tenant-12-secret"));
        assert!(s.check_bro("tenant-3|bro", "tenant-3-token"));
        assert!(!s.check_bro("tenant-3|bro", "tenant-3-secret"));
        assert!(!s.check_bro("tenant-3", "tenant-3-token"));
        let s = State::new(EmulatorConfig::default().tenant_accounts(false));
        assert_eq!(s.check_reob_user("tenant-7", "tenant-7-secret"), None);
    }

    #[test]
    fn refresh_tokens_are_single_use() {
        let s = State::new(EmulatorConfig::default());
        let i = s.issue(Provider::Twoba, "u".into(), false, Some("c".into()));
        let r = i.refresh_token.unwrap_or_default();
        assert_eq!(
            s.use_refresh(&r, "other").err(),
            Some(RefreshError::WrongClient)
        );
        assert_eq!(s.use_refresh(&r, "c").ok().as_deref(), Some("u"));
        assert_eq!(s.use_refresh(&r, "c").err(), Some(RefreshError::Reused));
        assert_eq!(
            s.use_refresh("nope", "c").err(),
            Some(RefreshError::Unknown)
        );
    }

    #[test]
    fn jwt_shape() {
        let t = jwt_token("u", Duration::from_secs(60));
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
        assert!(v["exp"].as_u64().is_some());
    }
}
