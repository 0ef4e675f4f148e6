//! `connections.toml`: the named connections `tokenauth proxy` serves, and
//! how a `Tokenauth-Connection` header finds one.
//!
//! ```toml
//! [connections.tenant-a]
//! provider = "reobtimaal"
//! inputs.username = "reob-demo"                          # a literal: non-secret inputs only
//! inputs.password = { env = "TENANT_A_REOB_PASSWORD" }   # secrets come from the environment
//! ```
//!
//! A name the file does not hold may still be a connection that `tokenauth
//! login` created in the store (`--store`): it is served with its inputs
//! from the provider's environment variables, as `tokenauth token
//! --connection NAME` would. The store is asked again after a minute (a
//! connection removed from it stops being served) and a name it lacks is
//! not asked about again for 5 seconds.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokenauth_core::store::StoreKey;
use tokenauth_core::{Connection, Providers, TokenAuth};

use super::reply::Refusal;

/// The id of the connection a request without the header gets (the
/// provider's inputs from its environment variables). A file connection
/// may not take it: its tokens would be cached under the same key.
const DEFAULT: &str = tokenauth_core::DEFAULT_CONNECTION;

/// The file, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    connections: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    provider: String,
    #[serde(default)]
    inputs: BTreeMap<String, Value>,
}

/// An input's value: a literal, or `{ env = "VAR" }`.
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "an input value: a string, or `{ env = \"VARIABLE\" }` (secrets: always the latter)"
)]
enum Value {
    Literal(String),
    Env { env: String },
}

/// A connection of the file, ready to serve.
struct Named {
    provider: String,
    connection: Connection,
    /// Inputs whose environment variable is not set: (input, variable).
    /// A request for the connection is refused naming them.
    unset: Vec<(String, String)>,
}

/// The connections a proxy serves by name.
pub(crate) struct Connections {
    /// Where they came from, for messages (`None`: no file).
    source: Option<PathBuf>,
    named: HashMap<String, Named>,
    /// Names found in the store (`tokenauth login`), per provider: looked up
    /// once, then served from here.
    from_store: Mutex<HashMap<(String, String), (Connection, Instant)>>,
    /// Per provider, the connection of requests without the header, when
    /// it is not the provider's default (`--emulator`: the demo accounts).
    defaults: HashMap<String, Connection>,
    /// Names the store did not hold, and when it was asked: not asked again
    /// for [`MISS_TTL`], so random names do not cost a store read each.
    misses: Mutex<HashMap<(String, String), Instant>>,
}

/// How long a connection found in the store is served before the store is
/// asked again.
const STORE_RECHECK: Duration = Duration::from_secs(60);

/// How long a name the store did not hold is answered from memory.
const MISS_TTL: Duration = Duration::from_secs(5);

/// At most this many remembered misses (then they are forgotten at once).
const MAX_MISSES: usize = 10_000;

/// What a request's connection header resolved to.
pub(crate) enum Resolved {
    /// A connection of the file or the store.
    Named(Connection),
    /// No header: the provider's default connection.
    Default,
}

impl Connections {
    /// No file: only the store's connections and the defaults.
    pub(crate) fn none() -> Self {
        Connections {
            source: None,
            named: HashMap::new(),
            from_store: Mutex::new(HashMap::new()),
            defaults: HashMap::new(),
            misses: Mutex::new(HashMap::new()),
        }
    }

    /// Requests without the header for these providers use these
    /// connections instead of the providers' defaults.
    pub(crate) fn with_defaults(
        mut self,
        defaults: impl IntoIterator<Item = (String, Connection)>,
    ) -> Self {
        self.defaults.extend(defaults);
        self
    }

    /// Reads and checks `path` against the description. Every problem is
    /// listed; unset environment variables are warnings (the connection is
    /// refused when used, naming the variable).
    pub(crate) fn load(
        path: &Path,
        providers: &Providers,
    ) -> Result<(Self, Vec<String>), Vec<String>> {
        let where_ = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![format!("{where_}: cannot read the connections file: {e}")])?;
        let file: File = toml::from_str(&text).map_err(|e| vec![format!("{where_}: {e}")])?;
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let mut named = HashMap::new();
        for (name, entry) in file.connections {
            let at = format!("{where_}: [connections.{name}]");
            if name == DEFAULT {
                problems.push(format!(
                    "{at}: `default` is the name of each provider's connection from its environment variables (requests without a Tokenauth-Connection header); choose another name"
                ));
                continue;
            }
            let Some(provider) = providers.get(&entry.provider) else {
                problems.push(format!(
                    "{at}: provider `{}` is not in the description; it has: {}",
                    entry.provider,
                    providers.ids().collect::<Vec<_>>().join(", ")
                ));
                continue;
            };
            let mut connection = Connection::new(name.clone());
            let mut unset = Vec::new();
            for (input_name, value) in entry.inputs {
                let Some(input) = provider.input(&input_name) else {
                    let names: Vec<&str> =
                        provider.inputs.iter().map(|i| i.name.as_str()).collect();
                    problems.push(format!(
                        "{at}: `{}` has no input `{input_name}`; its inputs are: {}",
                        provider.id,
                        names.join(", ")
                    ));
                    continue;
                };
                let value = match value {
                    Value::Literal(_) if input.secret => {
                        problems.push(format!(
                            "{at}: input `{input_name}` is secret: write `inputs.{input_name} = {{ env = \"VARIABLE\" }}` and put the value in that environment variable, never in the file"
                        ));
                        continue;
                    }
                    Value::Literal(v) => v,
                    Value::Env { env } => match std::env::var(&env) {
                        Ok(v) if !v.is_empty() => v,
                        _ => {
                            warnings.push(format!(
                                "warning: {at}: input `{input_name}` comes from ${env}, which is not set: requests for `{name}` are refused until it is"
                            ));
                            unset.push((input_name, env));
                            continue;
                        }
                    },
                };
                connection = if input.secret {
                    connection.with_secret(input_name, value)
                } else {
                    connection.with_input(input_name, value)
                };
            }
            named.insert(
                name,
                Named {
                    provider: provider.id.clone(),
                    connection,
                    unset,
                },
            );
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok((
            Connections {
                source: Some(path.to_owned()),
                named,
                from_store: Mutex::new(HashMap::new()),
                defaults: HashMap::new(),
                misses: Mutex::new(HashMap::new()),
            },
            warnings,
        ))
    }

    /// How many connections the file holds.
    pub(crate) fn len(&self) -> usize {
        self.named.len()
    }

    /// The connection `name` (a `Tokenauth-Connection` header) of provider
    /// `provider`: from the file, else from the store, else refused.
    pub(crate) async fn resolve(
        &self,
        auth: &TokenAuth,
        provider: &str,
        name: Option<&str>,
    ) -> Result<Resolved, Refusal> {
        let name = match name {
            Some(name) if name != DEFAULT => name,
            _ => {
                return Ok(match self.defaults.get(provider) {
                    Some(connection) => Resolved::Named(connection.clone()),
                    None => Resolved::Default,
                });
            }
        };
        if let Some(named) = self.named.get(name) {
            if named.provider != provider {
                return Err(Refusal::bad_connection(
                    provider,
                    format!(
                        "connection `{name}` is for provider `{}`, not `{provider}`: send its requests to /{}/…",
                        named.provider, named.provider
                    ),
                ));
            }
            if let Some((input, env)) = named.unset.first() {
                return Err(Refusal::missing_input(
                    provider,
                    format!(
                        "connection `{name}`: input `{input}` comes from the environment variable {env}, which is not set in the proxy's environment; set it and restart the proxy"
                    ),
                ));
            }
            return Ok(Resolved::Named(named.connection.clone()));
        }
        let key = (provider.to_owned(), name.to_owned());
        // Served from memory for a while, then asked again: a connection
        // removed from the store (a logout) stops being served.
        if let Some((found, checked)) = lock(&self.from_store).get(&key)
            && checked.elapsed() < STORE_RECHECK
        {
            return Ok(Resolved::Named(found.clone()));
        }
        let unknown = || {
            let file = match &self.source {
                Some(path) => format!("is not in {}", path.display()),
                None => "is not known (no connections file: --connections FILE)".to_owned(),
            };
            Refusal::bad_connection(
                provider,
                format!(
                    "connection `{name}` {file} and the token store holds nothing for it (`tokenauth --store … login {provider} --connection {name}` creates one there); without the Tokenauth-Connection header the provider's default connection is used"
                ),
            )
        };
        if lock(&self.misses)
            .get(&key)
            .is_some_and(|asked| asked.elapsed() < MISS_TTL)
        {
            return Err(unknown());
        }
        let state = auth
            .store()
            .read(&StoreKey {
                provider,
                connection: name,
            })
            .await
            .map_err(|e| {
                Refusal::store(provider, format!("the token store could not be read: {e}"))
            })?;
        if state.refresh_token.is_none() && state.token.is_none() {
            lock(&self.from_store).remove(&key);
            let mut misses = lock(&self.misses);
            if misses.len() >= MAX_MISSES {
                misses.clear();
            }
            misses.insert(key, Instant::now());
            return Err(unknown());
        }
        // A connection `tokenauth login` created: its id, and the
        // provider's inputs from their environment variables.
        let connection = match auth.providers().get(provider) {
            Some(p) => crate::common::env_connection(p, name, &[]),
            None => Connection::new(name),
        };
        lock(&self.from_store).insert(key, (connection.clone(), Instant::now()));
        Ok(Resolved::Named(connection))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
