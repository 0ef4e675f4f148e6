//! The typed, validated model of a `providers.toml` file.
//!
//! Every value here has passed validation: URLs are absolute and allowed,
//! templates are parsed and name only declared inputs, pointers are well
//! formed, at least one injection part is set and every provider that logs in
//! has a way to know when its token expires.

use std::collections::HashMap;
use std::time::Duration;

use http::{HeaderName, Method};

use crate::template::Template;
use crate::url_template::UrlTemplate;

/// The longest duration a description may give (`ttl`, a fixed `skew`,
/// `timeout`): 10 years, written `"10y"` (a year is 365.25 days). Anything
/// longer is a mistake, and bounding it keeps every time computed from it
/// far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 31_557_600);

/// All providers of one description file, in file order.
#[derive(Clone, serde::Serialize)]
#[serde(transparent)]
pub struct Providers {
    pub(crate) providers: Vec<Provider>,
    /// Positions in `providers` by id: a catalog of hundreds is looked up
    /// per request (`tokenauth proxy` addresses providers by id).
    #[serde(skip)]
    positions: HashMap<String, usize, foldhash::fast::RandomState>,
}

impl Providers {
    /// The providers of a description, in file order (ids distinct).
    pub(crate) fn new(providers: Vec<Provider>) -> Self {
        let mut positions = HashMap::with_hasher(foldhash::fast::RandomState::default());
        for (i, p) in providers.iter().enumerate() {
            positions.entry(p.id.clone()).or_insert(i);
        }
        Providers {
            providers,
            positions,
        }
    }

    /// The provider with this id.
    pub fn get(&self, id: &str) -> Option<&Provider> {
        self.position(id).map(|i| &self.providers[i])
    }

    /// The position of provider `id` in file order.
    pub(crate) fn position(&self, id: &str) -> Option<usize> {
        self.positions.get(id).copied()
    }

    /// All providers, in the order the file lists them.
    pub fn iter(&self) -> std::slice::Iter<'_, Provider> {
        self.providers.iter()
    }

    /// The number of providers.
    pub fn len(&self) -> usize {
        self.providers.len()
    }

    /// True when the file describes no provider.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// The provider ids, in file order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.providers.iter().map(|p| p.id.as_str())
    }
}

impl std::fmt::Debug for Providers {
    /// The providers (the index by id is derived from them).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("providers", &self.providers)
            .finish()
    }
}

impl<'a> IntoIterator for &'a Providers {
    type Item = &'a Provider;
    type IntoIter = std::slice::Iter<'a, Provider>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// One provider: how to get a credential and where to attach it.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct Provider {
    /// The id: the key under `[providers.ID]`.
    pub id: String,
    /// A human name for messages (`name = "..."`, defaults to the id).
    pub name: String,
    /// URL prefixes the credential may be attached to. Never empty. A
    /// prefix with `{{ inputs.NAME }}` placeholders is rendered per
    /// connection: a connection's credential only goes inside its own
    /// rendered prefixes.
    pub api: Vec<UrlTemplate>,
    /// `allow_insecure_http = true`: plain `http://` URLs are allowed for
    /// hosts other than loopback. Off by default.
    pub allow_insecure_http: bool,
    /// Declared inputs, in file order.
    pub inputs: Vec<Input>,
    /// How to log in; `None` for static credentials (BRO).
    pub login: Option<TokenRequest>,
    /// How to use a refresh token, if the provider issues them.
    pub refresh: Option<Refresh>,
    /// The device authorization grant (RFC 8628), if the provider offers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    /// Where the token and its lifetime are in the reply.
    pub response: Response,
    /// How long a token lives and when to renew it.
    pub expiry: Expiry,
    /// How the credential is attached to requests.
    pub inject: Inject,
    /// What to do when the API rejects a credential.
    pub on_unauthorized: OnUnauthorized,
    /// A request that proves the credentials work (`tokenauth test`).
    pub test: Option<TestRequest>,
    /// `[authorize]`: the authorization-code grant (a person consents in a
    /// browser; `tokenauth login`, [`TokenAuth::authorization_request`]).
    ///
    /// [`TokenAuth::authorization_request`]: crate::TokenAuth::authorization_request
    pub authorize: Option<Authorize>,
}

impl Provider {
    /// The declared input with this name.
    pub fn input(&self, name: &str) -> Option<&Input> {
        self.inputs.iter().find(|i| i.name == name)
    }

    /// The prefix an API base from a token reply (`response.api_base`) binds
    /// the connection to: the first of `api` that may hold it (see
    /// [`UrlTemplate::bind`]); `None` when none may.
    pub fn bind_api_base(&self, value: &url::Url) -> Option<url::Url> {
        self.api.iter().find_map(|prefix| prefix.bind(value))
    }

    /// True when where the credential may go depends on the connection: an
    /// `api` prefix with `{{ inputs.NAME }}` or `*`, or `response.api_base`.
    pub fn per_connection_api(&self) -> bool {
        self.response.api_base.is_some() || self.api.iter().any(|p| !p.is_literal())
    }

    /// True when the provider fetches tokens: it has a `login` table, or a
    /// `refresh` table (a refresh-only provider starts from a stored refresh
    /// token).
    pub fn fetches_tokens(&self) -> bool {
        self.login.is_some() || self.refresh.is_some()
    }
}

/// A declared input: a value each connection supplies (user name, password,
/// client id, ...).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Input {
    /// The name used in templates as `{{ inputs.NAME }}`.
    pub name: String,
    /// The environment variable the default connection reads it from.
    /// `None`: the application supplies it per connection at run time.
    pub env: Option<String>,
    /// Secret inputs are never printed, logged or put in an error.
    pub secret: bool,
    /// A value used when neither the connection nor the environment has one.
    /// Not allowed for secret inputs.
    pub default: Option<String>,
    /// `pattern = "..."`: a regular expression every value must match as a
    /// whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<InputPattern>,
    /// `one_of = [...]`: the only values allowed (e.g. a provider's regions
    /// or data centres). Empty: any value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub one_of: Vec<String>,
}

impl Input {
    /// Why `value` breaks the input's `pattern` or `one_of`, if it does.
    pub fn violation(&self, value: &str) -> Option<String> {
        if !self.one_of.is_empty() && !self.one_of.iter().any(|v| v == value) {
            return Some(format!("it must be one of {}", self.one_of.join(", ")));
        }
        match &self.pattern {
            Some(p) if !p.matches(value) => Some(format!(
                "it does not match the input's pattern `{}`",
                p.source()
            )),
            _ => None,
        }
    }
}

/// An input's `pattern`: a regular expression (`regex-lite` syntax: no
/// look-around, linear time) that a value must match as a whole.
#[derive(Clone)]
pub struct InputPattern {
    source: String,
    regex: regex_lite::Regex,
}

impl InputPattern {
    /// Compiles `source`, anchored at both ends.
    pub fn new(source: &str) -> Result<Self, String> {
        let regex = regex_lite::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                let why = e.to_string();
                let first = why.lines().last().unwrap_or("invalid").trim();
                format!("`{source}` is not a valid regular expression ({first})")
            })?;
        Ok(InputPattern {
            source: source.to_owned(),
            regex,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when `value` matches as a whole.
    pub fn matches(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

impl PartialEq for InputPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for InputPattern {}

impl std::fmt::Debug for InputPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl serde::Serialize for InputPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// How a request body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded` (the default).
    Form,
    /// `application/json`: an object of the fields, nested as written.
    Json,
}

/// HTTP Basic credentials, as templates.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BasicAuth {
    /// The user name template.
    pub username: Template,
    /// The password template.
    pub password: Template,
    /// Client authentication of a token request (`login.basic`,
    /// `refresh.basic`): the rendered user name and password are each
    /// `application/x-www-form-urlencoded` before they are joined and
    /// base64-encoded, as RFC 6749 §2.3.1 requires (so a client id with `:`
    /// or non-ASCII characters arrives intact). `form_encode = false` sends
    /// them as they are, for servers that do not decode. Always false for
    /// `inject.basic`, which is plain HTTP Basic (RFC 7617).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub form_encode: bool,
}

/// A token request: the login (`[login]`) or the refresh (`[refresh]`).
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct TokenRequest {
    /// Where to send it (with `{{ inputs.NAME }}` placeholders rendered per
    /// connection).
    pub url: UrlTemplate,
    /// The method, `POST` by default.
    #[serde(serialize_with = "ser::method")]
    pub method: Method,
    /// The body encoding, `form` by default.
    pub body: BodyFormat,
    /// The body fields, in file order, names exactly as written. Only a
    /// `body = "json"` POST has values other than [`FieldValue::Text`].
    pub fields: Vec<(String, FieldValue)>,
    /// Extra request headers, in file order.
    #[serde(serialize_with = "ser::headers")]
    pub headers: Vec<(HeaderName, Template)>,
    /// Client authentication in an `Authorization: Basic` header.
    pub basic: Option<BasicAuth>,
    /// How long the whole request may take. Defaults to 30 seconds.
    #[serde(serialize_with = "ser::duration")]
    pub timeout: Duration,
    /// The JWT signed for each request (`login.assertion`), which the
    /// `{{ assertion }}` placeholder of its fields and headers sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assertion: Option<Assertion>,
}

impl TokenRequest {
    /// Whether a field, header or the basic credentials send
    /// `{{ assertion }}`.
    pub(crate) fn sends_assertion(&self) -> bool {
        let uses = |t: &Template| t.vars().any(|v| *v == crate::template::Var::Assertion);
        self.fields
            .iter()
            .any(|(_, v)| v.texts().into_iter().any(uses))
            || self.headers.iter().any(|(_, t)| uses(t))
            || self
                .basic
                .as_ref()
                .is_some_and(|b| uses(&b.username) || uses(&b.password))
    }
}

/// An RFC 7523 JWT the engine signs afresh for every token request: the
/// `assertion` of the jwt-bearer grant, or the `client_assertion` of
/// `private_key_jwt` client authentication. `iat` (the engine's clock),
/// `exp` (`iat` + `lifetime`) and `jti` (random) are set by the engine.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Assertion {
    /// The signing algorithm.
    pub algorithm: JwtAlgorithm,
    /// The key: a template of secret inputs only, holding a PEM private key
    /// (or the shared secret for HS256).
    pub key: Template,
    /// The `kid` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<Template>,
    /// The `x5t` header: the base64url SHA-1 thumbprint of the key's
    /// certificate (Microsoft Entra certificate credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x5t: Option<Template>,
    /// The `x5t#S256` header: the base64url SHA-256 thumbprint of the key's
    /// certificate (what Microsoft Entra documents for PS256).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<Template>,
    /// The claims, in file order (string values).
    #[serde(serialize_with = "ser::claims")]
    pub claims: Vec<(String, Template)>,
    /// `exp` - `iat`.
    #[serde(serialize_with = "ser::duration")]
    pub lifetime: Duration,
}

/// A JWS algorithm an [`Assertion`] is signed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (an RSA private key).
    RS256,
    /// RSASSA-PSS with SHA-256 (an RSA private key).
    PS256,
    /// ECDSA on P-256 with SHA-256 (an EC private key).
    ES256,
    /// HMAC with SHA-256 (a shared secret).
    HS256,
}

impl JwtAlgorithm {
    /// The name as written (`"RS256"`).
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::PS256 => "PS256",
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::HS256 => "HS256",
        }
    }
}

/// A body field's value: a template, or (only in a JSON body) a number, a
/// boolean, a list or a nested object. `T` is [`Template`] in a description
/// and `String` once rendered for a connection.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue<T = Template> {
    /// A string; templates are rendered in strings only.
    Text(T),
    /// An integer.
    Integer(i64),
    /// A finite float.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A list.
    Array(Vec<FieldValue<T>>),
    /// An object, its keys in file order.
    Table(Vec<(String, FieldValue<T>)>),
}

impl<T: serde::Serialize> serde::Serialize for FieldValue<T> {
    /// As the JSON it stands for: a table is an object, keys in file order.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            FieldValue::Text(t) => t.serialize(s),
            FieldValue::Integer(i) => s.serialize_i64(*i),
            FieldValue::Float(x) => s.serialize_f64(*x),
            FieldValue::Bool(b) => s.serialize_bool(*b),
            FieldValue::Array(items) => s.collect_seq(items),
            FieldValue::Table(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<T> FieldValue<T> {
    /// The same tree with every string mapped by `f` (rendering a template);
    /// the first error stops it.
    pub fn try_map<U, E>(
        &self,
        f: &mut impl FnMut(&T) -> Result<U, E>,
    ) -> Result<FieldValue<U>, E> {
        Ok(match self {
            FieldValue::Text(t) => FieldValue::Text(f(t)?),
            FieldValue::Integer(i) => FieldValue::Integer(*i),
            FieldValue::Float(x) => FieldValue::Float(*x),
            FieldValue::Bool(b) => FieldValue::Bool(*b),
            FieldValue::Array(items) => FieldValue::Array(
                items
                    .iter()
                    .map(|v| v.try_map(f))
                    .collect::<Result<_, E>>()?,
            ),
            FieldValue::Table(entries) => FieldValue::Table(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.try_map(f)?)))
                    .collect::<Result<_, E>>()?,
            ),
        })
    }

    /// Every string of the tree, in order.
    pub fn texts(&self) -> Vec<&T> {
        let mut out = Vec::new();
        self.collect_texts(&mut out);
        out
    }

    fn collect_texts<'s>(&'s self, out: &mut Vec<&'s T>) {
        match self {
            FieldValue::Text(t) => out.push(t),
            FieldValue::Array(items) => items.iter().for_each(|v| v.collect_texts(out)),
            FieldValue::Table(entries) => entries.iter().for_each(|(_, v)| v.collect_texts(out)),
            FieldValue::Integer(_) | FieldValue::Float(_) | FieldValue::Bool(_) => {}
        }
    }

    /// The string, when this is one (every field of a form body or a GET).
    pub fn as_text(&self) -> Option<&T> {
        match self {
            FieldValue::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// `[authorize]`: the authorization-code grant (RFC 6749 §4.1, with PKCE,
/// RFC 7636).
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct Authorize {
    /// The authorization endpoint the person's browser is sent to, rendered
    /// per connection.
    pub url: UrlTemplate,
    /// `client_id`: sent in the authorization URL, and in the code exchange
    /// unless that authenticates the client with Basic or writes its own.
    pub client_id: Template,
    /// The scopes asked for, joined with `scope_separator`; none: no
    /// `scope` parameter.
    pub scopes: Vec<String>,
    /// What joins the scopes: `" "` by default (RFC 6749 §3.3).
    pub scope_separator: String,
    /// Extra query parameters of the authorization URL, in file order.
    pub params: Vec<(String, Template)>,
    /// The PKCE method (RFC 7636).
    pub pkce: Pkce,
    /// The registered redirect URI; see [`RedirectUri`].
    pub redirect_uri: RedirectUri,
    /// The code exchange (RFC 6749 §4.1.3). `grant_type`, `code`,
    /// `redirect_uri`, `code_verifier` (with PKCE) and `client_id` (without
    /// Basic client authentication) are added by the engine unless the
    /// fields name them.
    pub exchange: TokenRequest,
}

/// The PKCE method of an authorization request (RFC 7636 §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Pkce {
    /// `code_challenge = BASE64URL(SHA256(verifier))`: the default.
    S256,
    /// `code_challenge = verifier`, for servers without SHA-256.
    Plain,
    /// No PKCE parameters at all.
    Off,
}

impl Pkce {
    /// The `code_challenge_method` value, `None` when off.
    pub fn method(self) -> Option<&'static str> {
        match self {
            Pkce::S256 => Some("S256"),
            Pkce::Plain => Some("plain"),
            Pkce::Off => None,
        }
    }
}

/// The registered redirect URI. A loopback `http` URI without a port
/// stands for any port of that host and path (RFC 8252 §7.3): the one a
/// native app listens on is filled in per request.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct RedirectUri {
    /// As written (`http://127.0.0.1/callback`).
    #[serde(serialize_with = "crate::config::model::ser_url")]
    pub uri: url::Url,
    /// No port was written on a loopback URI: any port matches.
    pub any_port: bool,
}

impl RedirectUri {
    /// True for a loopback `http` URI (`127.0.0.1`, `[::1]`, `localhost`),
    /// the kind `tokenauth login` can listen on.
    pub fn is_loopback(&self) -> bool {
        self.uri.scheme() == "http"
            && match self.uri.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            }
    }

    /// True when `uri` is this one, or (any port) this one on another port.
    pub fn admits(&self, uri: &url::Url) -> bool {
        let mut want = self.uri.clone();
        if self.any_port && want.set_port(uri.port()).is_err() {
            return false;
        }
        want == *uri
    }
}

pub(crate) fn ser_url<S: serde::Serializer>(u: &url::Url, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(u.as_str())
}

/// `[refresh]`: how to trade a refresh token for a new access token.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct Refresh {
    /// The request; url, method, body, headers, basic and timeout default to
    /// the login's (fields are its own).
    pub request: TokenRequest,
    /// The reply carries a new refresh token that replaces the old one.
    pub rotate: bool,
    /// Which refresh failures mean "the refresh token is dead".
    pub on_error: RefreshOnError,
    /// `seed = "{{ inputs.refresh_token }}"`: the refresh token a connection
    /// starts from while the store holds none (a token from a provider's
    /// console, or from a consent flow run elsewhere). Once a refresh
    /// stores one, the stored token is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<Template>,
}

/// `[device]`: the device authorization grant (RFC 8628). The device
/// authorization request is `request` (with `scope` added from `scopes`);
/// the polling request goes to the login's token URL (the refresh's in a
/// refresh-only provider) with `grant_type =
/// urn:ietf:params:oauth:grant-type:device_code`, `device_code` and the
/// fields of `request` (the client id, say), and the login's (or refresh's)
/// headers and Basic client authentication. Its reply is read with
/// `[response]`, like a login's.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct Device {
    /// The device authorization request. `POST` and a form body by default.
    pub request: TokenRequest,
    /// The scopes asked for, sent as the `scope` field; none: no `scope`.
    pub scopes: Vec<String>,
    /// What joins `scopes`. Defaults to a space (RFC 6749 §3.3).
    pub scope_separator: String,
    /// Where the device reply's values are.
    pub reply: DeviceReply,
}

/// `device.reply`: JSON Pointers into the device authorization reply; each
/// defaults to the RFC 8628 §3.2 name (`/device_code`, `/user_code`, ...).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct DeviceReply {
    /// The device code (a secret: it is sent only in the polls).
    pub device_code: JsonPointer,
    /// The code the person enters.
    pub user_code: JsonPointer,
    /// Where the person enters it.
    pub verification_uri: JsonPointer,
    /// The same with the code in it (optional in a reply).
    pub verification_uri_complete: JsonPointer,
    /// The lifetime of the codes, in seconds.
    pub expires_in: JsonPointer,
    /// The polling interval in seconds (optional in a reply: 5 s).
    pub interval: JsonPointer,
}

impl Default for DeviceReply {
    fn default() -> Self {
        let p = |s: &str| JsonPointer(s.to_owned());
        DeviceReply {
            device_code: p("/device_code"),
            user_code: p("/user_code"),
            verification_uri: p("/verification_uri"),
            verification_uri_complete: p("/verification_uri_complete"),
            expires_in: p("/expires_in"),
            interval: p("/interval"),
        }
    }
}

/// `refresh.on_error`: a refresh failure that matches is handled by `action`;
/// any other failure is retried with backoff.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct RefreshOnError {
    /// HTTP statuses that match. Defaults to `[400, 401]`.
    pub status: Vec<u16>,
    /// Optional pointer to an error code in the JSON reply body.
    pub error_pointer: Option<JsonPointer>,
    /// With `error_pointer`: the codes that match (e.g. `invalid_grant`).
    /// Empty: any value matches.
    pub error_values: Vec<String>,
    /// What to do on a match.
    pub action: RefreshErrorAction,
}

/// What a dead refresh token leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshErrorAction {
    /// Log in again with the login request (the default).
    Login,
    /// Give up: the error goes to the caller.
    Fail,
}

/// An RFC 6901 JSON Pointer, checked at load time.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct JsonPointer(String);

impl JsonPointer {
    /// Parses a pointer: empty, or `/`-separated segments where `~` is only
    /// followed by `0` or `1`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if !s.is_empty() && !s.starts_with('/') {
            return Err(format!(
                "`{s}` is not a JSON Pointer: it must start with `/`, as in `/{s}`"
            ));
        }
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                return Err(format!(
                    "`{s}` is not a valid JSON Pointer: `~` must be followed by `0` (for `~`) or `1` (for `/`)"
                ));
            }
        }
        Ok(JsonPointer(s.to_owned()))
    }

    /// The pointer text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Looks the pointer up in a JSON value.
    pub fn find<'v>(&self, value: &'v serde_json::Value) -> Option<&'v serde_json::Value> {
        value.pointer(&self.0)
    }
}

impl std::fmt::Debug for JsonPointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Where a value of the token reply is: in the JSON body, a reply header or
/// a cookie the reply sets.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum TokenSource {
    /// `"/access_token"`: a JSON Pointer into the body.
    Pointer(JsonPointer),
    /// `{ header = "X-Subject-Token" }`: a reply header.
    Header {
        /// The header name.
        #[serde(serialize_with = "ser::header_name")]
        header: HeaderName,
    },
    /// `{ cookie = "SESSION" }`: the value of a cookie in the reply's
    /// `Set-Cookie` headers (its attributes are not part of it).
    Cookie {
        /// The cookie name (case-sensitive).
        cookie: String,
    },
}

impl TokenSource {
    /// True when the value is read from the JSON body.
    pub fn reads_body(&self) -> bool {
        matches!(self, TokenSource::Pointer(_))
    }

    /// The pointer, when the value is read from the body.
    pub fn pointer(&self) -> Option<&JsonPointer> {
        match self {
            TokenSource::Pointer(p) => Some(p),
            _ => None,
        }
    }
}

impl std::fmt::Display for TokenSource {
    /// `/access_token`, `header X-Subject-Token`, `cookie SESSION`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Pointer(p) => f.write_str(p.as_str()),
            TokenSource::Header { header } => write!(f, "header {header}"),
            TokenSource::Cookie { cookie } => write!(f, "cookie {cookie}"),
        }
    }
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Pointer(p) => write!(f, "{p:?}"),
            other => write!(f, "{:?}", other.to_string()),
        }
    }
}

impl From<JsonPointer> for TokenSource {
    fn from(p: JsonPointer) -> Self {
        TokenSource::Pointer(p)
    }
}

/// The unit of `response.expires_in`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiresInUnit {
    /// Seconds (the default, RFC 6749).
    Seconds,
    /// Milliseconds.
    Milliseconds,
    /// Minutes.
    Minutes,
}

impl ExpiresInUnit {
    /// The unit's name as written in the description.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiresInUnit::Seconds => "seconds",
            ExpiresInUnit::Milliseconds => "milliseconds",
            ExpiresInUnit::Minutes => "minutes",
        }
    }

    /// How many seconds one unit is.
    pub fn seconds(self) -> f64 {
        match self {
            ExpiresInUnit::Seconds => 1.0,
            ExpiresInUnit::Milliseconds => 0.001,
            ExpiresInUnit::Minutes => 60.0,
        }
    }
}

/// `[response]`: where things are in the token reply.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Response {
    /// The access token. Defaults to `/access_token`.
    pub access_token: TokenSource,
    /// The refresh token, if the provider issues one.
    pub refresh_token: Option<TokenSource>,
    /// Lifetime from now, in `expires_in_unit`.
    pub expires_in: Option<TokenSource>,
    /// The unit of `expires_in`: seconds by default.
    pub expires_in_unit: ExpiresInUnit,
    /// Absolute expiry time.
    pub expires_at: Option<TokenSource>,
    /// How `expires_at` is written.
    pub expires_at_format: ExpiresAtFormat,
    /// The token type (informational: the inject template decides the header).
    pub token_type: Option<JsonPointer>,
    /// `api_base = "/instance_url"`: the API base URL for this connection
    /// (Salesforce's `instance_url`, Zoho's `api_domain`). It must lie
    /// inside one of the `api` prefixes (a `*` host label stands for one
    /// DNS label); the connection's credential then only goes inside it.
    pub api_base: Option<JsonPointer>,
}

impl Default for Response {
    fn default() -> Self {
        Response {
            access_token: TokenSource::Pointer(JsonPointer("/access_token".into())),
            refresh_token: None,
            expires_in: None,
            expires_in_unit: ExpiresInUnit::Seconds,
            expires_at: None,
            expires_at_format: ExpiresAtFormat::Rfc3339,
            token_type: None,
            api_base: None,
        }
    }
}

impl Response {
    /// The sources of the token, refresh token and expiry, each with its key.
    pub fn sources(&self) -> impl Iterator<Item = (&'static str, &TokenSource)> {
        [
            ("access_token", Some(&self.access_token)),
            ("refresh_token", self.refresh_token.as_ref()),
            ("expires_in", self.expires_in.as_ref()),
            ("expires_at", self.expires_at.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, s)| Some((k, s?)))
    }

    /// True when some value is read from the body, which must then be JSON
    /// (the API base, `api_base`, is always read from it).
    pub fn reads_body(&self) -> bool {
        self.api_base.is_some() || self.sources().any(|(_, s)| s.reads_body())
    }
}

/// The format of `response.expires_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiresAtFormat {
    /// An RFC 3339 timestamp string, e.g. `2026-11-22T15:04:05Z` (the default).
    Rfc3339,
    /// Seconds since the Unix epoch (number or numeric string).
    UnixSeconds,
    /// Milliseconds since the Unix epoch (number or numeric string).
    UnixMillis,
}

/// `[expiry]`: lifetime and renewal.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Expiry {
    /// Lifetime to assume when the reply says nothing (REOBtimaal: 60 minutes).
    #[serde(serialize_with = "ser::opt_duration")]
    pub ttl: Option<Duration>,
    /// How long before expiry to renew.
    pub skew: Skew,
    /// Read the `exp` claim when the access token is a JWT.
    pub jwt_exp: bool,
}

impl Default for Expiry {
    fn default() -> Self {
        Expiry {
            ttl: None,
            skew: Skew::DEFAULT,
            jwt_exp: false,
        }
    }
}

/// How long before expiry a token is renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Skew {
    /// A fixed time before expiry, e.g. `"30s"`.
    Fixed(#[serde(serialize_with = "ser::duration")] Duration),
    /// A percentage of the token's lifetime, e.g. `"10%"`.
    Percent(u8),
}

impl Skew {
    /// The default: 10% of the lifetime (12 s of a 120 s token, 6 minutes of a
    /// 60 minute token).
    pub const DEFAULT: Skew = Skew::Percent(10);
}

/// `[inject]`: how the credential is attached to each request. Any of a
/// header with its value, HTTP Basic, more headers and query parameters, at
/// least one; a header name appears at most once across them
/// (case-insensitively; `basic` counts as `Authorization`), and so does a
/// query parameter name. Attached in this order: `header`, `basic`,
/// `headers`, `query`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Inject {
    /// `header = "Authorization"`, `value = "Bearer {{ token.access }}"`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser::header"
    )]
    pub header: Option<(HeaderName, Template)>,
    /// `basic = { username = "...", password = "..." }`: HTTP Basic, in the
    /// `Authorization` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
    /// `headers = { "X-Api-Key" = "{{ inputs.key }}" }`, in file order.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "ser::headers")]
    pub headers: Vec<(HeaderName, Template)>,
    /// `query = { api_key = "{{ inputs.key }}" }` (or the single form
    /// `query = { name = "api_key", value = "{{ inputs.key }}" }`), in file
    /// order.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "ser::params")]
    pub query: Vec<(String, Template)>,
}

impl Inject {
    /// The header templates, `header` first, then `headers` (not `basic`).
    pub fn header_templates(&self) -> impl Iterator<Item = (&HeaderName, &Template)> {
        self.header
            .iter()
            .chain(&self.headers)
            .map(|(name, value)| (name, value))
    }

    /// Every template of every part.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        let basic = self.basic.iter().flat_map(|b| [&b.username, &b.password]);
        self.header_templates()
            .map(|(_, t)| t)
            .chain(basic)
            .chain(self.query.iter().map(|(_, t)| t))
    }

    /// True when one of the parts sets the header `name` (`basic` sets
    /// `Authorization`).
    pub fn sets_header(&self, name: &HeaderName) -> bool {
        (self.basic.is_some() && name == http::header::AUTHORIZATION)
            || self.header_templates().any(|(n, _)| n == name)
    }
}

/// `[on_unauthorized]`: what a rejected credential leads to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct OnUnauthorized {
    /// Statuses that mean "credential rejected". Defaults to `[401]`.
    pub status: Vec<u16>,
    /// What to do. Defaults to `renew` for providers that log in.
    pub action: UnauthorizedAction,
}

/// What to do when the API rejects a credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnauthorizedAction {
    /// Drop the rejected token, get a new one and retry the request once.
    Renew,
    /// Return the response as is.
    Fail,
}

/// `[test]`: a request that proves the credentials work.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct TestRequest {
    /// The method, `GET` by default.
    #[serde(serialize_with = "ser::method")]
    pub method: Method,
    /// The URL; it must lie inside one of the provider's `api` prefixes.
    pub url: UrlTemplate,
    /// Extra headers.
    #[serde(serialize_with = "ser::headers")]
    pub headers: Vec<(HeaderName, Template)>,
    /// An optional request body, sent as written.
    pub body: Option<String>,
    /// Statuses that count as success. Defaults to `[200]`.
    pub expect_status: Vec<u16>,
}

/// Serializers for the model's foreign types: URLs, methods and header names
/// as strings, durations in humantime form (`"1h"`, `"30s"`).
mod ser {
    use std::time::Duration;

    use http::{HeaderName, Method};
    use serde::Serializer;
    use serde::ser::SerializeSeq;

    use crate::template::Template;

    pub(super) fn method<S: Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(m.as_str())
    }

    pub(super) fn header_name<S: Serializer>(h: &HeaderName, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(h.as_str())
    }

    pub(super) fn claims<S: Serializer>(c: &[(String, Template)], s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(c.len()))?;
        for (name, value) in c {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }

    pub(super) fn headers<S: Serializer>(
        h: &[(HeaderName, Template)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(h.len()))?;
        for (name, value) in h {
            seq.serialize_element(&(name.as_str(), value))?;
        }
        seq.end()
    }

    pub(super) fn header<S: Serializer>(
        h: &Option<(HeaderName, Template)>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        match h {
            Some((name, value)) => {
                let mut st = s.serialize_struct("Header", 2)?;
                st.serialize_field("name", name.as_str())?;
                st.serialize_field("value", value)?;
                st.end()
            }
            None => s.serialize_none(),
        }
    }

    pub(super) fn params<S: Serializer>(p: &[(String, Template)], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(p.len()))?;
        for (name, value) in p {
            seq.serialize_element(&(name.as_str(), value))?;
        }
        seq.end()
    }

    pub(super) fn duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub(super) fn opt_duration<S: Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => duration(d, s),
            None => s.serialize_none(),
        }
    }
}
