//! The typed, validated model of a `providers.toml` file.
//!
//! Every value here has passed validation: URLs are absolute and allowed,
//! templates are parsed and name only declared inputs, pointers are well
//! formed, at least one injection part is set and every provider that logs in
//! has a way to know when its token expires.

use std::time::Duration;

use http::{HeaderName, Method};
use url::Url;

use crate::template::Template;

/// The longest duration a description may give (`ttl`, a fixed `skew`,
/// `timeout`): 10 years, written `"10y"` (a year is 365.25 days). Anything
/// longer is a mistake, and bounding it keeps every time computed from it
/// far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 31_557_600);

/// All providers of one description file, in file order.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct Providers {
    pub(crate) providers: Vec<Provider>,
}

impl Providers {
    /// The provider with this id.
    pub fn get(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.id == id)
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
    /// URL prefixes the credential may be attached to. Never empty.
    #[serde(serialize_with = "ser::urls")]
    pub api: Vec<Url>,
    /// `allow_insecure_http = true`: plain `http://` URLs are allowed for
    /// hosts other than loopback. Off by default.
    pub allow_insecure_http: bool,
    /// Declared inputs, in file order.
    pub inputs: Vec<Input>,
    /// How to log in; `None` for static credentials (BRO).
    pub login: Option<TokenRequest>,
    /// How to use a refresh token, if the provider issues them.
    pub refresh: Option<Refresh>,
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
}

impl Provider {
    /// The declared input with this name.
    pub fn input(&self, name: &str) -> Option<&Input> {
        self.inputs.iter().find(|i| i.name == name)
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
}

/// How a request body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded` (the default).
    Form,
    /// `application/json`, a flat object of string values.
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
    /// Where to send it.
    #[serde(serialize_with = "ser::url")]
    pub url: Url,
    /// The method, `POST` by default.
    #[serde(serialize_with = "ser::method")]
    pub method: Method,
    /// The body encoding, `form` by default.
    pub body: BodyFormat,
    /// The body fields, in file order, names exactly as written.
    pub fields: Vec<(String, Template)>,
    /// Extra request headers, in file order.
    #[serde(serialize_with = "ser::headers")]
    pub headers: Vec<(HeaderName, Template)>,
    /// Client authentication in an `Authorization: Basic` header.
    pub basic: Option<BasicAuth>,
    /// How long the whole request may take. Defaults to 30 seconds.
    #[serde(serialize_with = "ser::duration")]
    pub timeout: Duration,
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

/// `[response]`: where things are in the token reply.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Response {
    /// The access token. Defaults to `/access_token`.
    pub access_token: JsonPointer,
    /// The refresh token, if the provider issues one.
    pub refresh_token: Option<JsonPointer>,
    /// Lifetime in seconds from now.
    pub expires_in: Option<JsonPointer>,
    /// Absolute expiry time.
    pub expires_at: Option<JsonPointer>,
    /// How `expires_at` is written.
    pub expires_at_format: ExpiresAtFormat,
    /// The token type (informational: the inject template decides the header).
    pub token_type: Option<JsonPointer>,
}

impl Default for Response {
    fn default() -> Self {
        Response {
            access_token: JsonPointer("/access_token".into()),
            refresh_token: None,
            expires_in: None,
            expires_at: None,
            expires_at_format: ExpiresAtFormat::Rfc3339,
            token_type: None,
        }
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
    #[serde(serialize_with = "ser::url")]
    pub url: Url,
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
    use url::Url;

    use crate::template::Template;

    pub(super) fn url<S: Serializer>(u: &Url, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(u.as_str())
    }

    pub(super) fn urls<S: Serializer>(u: &[Url], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(u.iter().map(Url::as_str))
    }

    pub(super) fn method<S: Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(m.as_str())
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
