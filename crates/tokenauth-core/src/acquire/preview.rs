//! Previews: the exact token request and injected credential a description
//! produces, with every secret masked, without sending anything.
//!
//! The preview is built by the same encoding code as the real request, so
//! what it shows (field names, order, encoding, content type) is what goes
//! on the wire; only secret values are replaced by a label such as
//! `[secret inputs.password]`. Missing inputs do not fail a preview: they are
//! shown as `[inputs.username: not set, set $REOBTIMAAL_USERNAME]`.
//!
//! ```
//! use tokenauth_core::preview::preview_token_request;
//! use tokenauth_core::{Connection, Providers, RequestKind};
//!
//! let providers = Providers::from_toml("p.toml", r#"
//! [providers.reob]
//! api = ["https://api.example.com/"]
//! inputs.username = { env = "REOB_USER" }
//! inputs.password = { env = "REOB_PASS", secret = true }
//! login.url = "https://api.example.com/api/Token"
//! login.fields = { "grant-type" = "password", username = "{{ inputs.username }}", Password = "{{ inputs.password }}" }
//! expiry.ttl = "60m"
//! inject = { header = "Authorization", value = "bearer {{ token.access }}" }
//! "#).unwrap();
//! let reob = providers.get("reob").unwrap();
//! let conn = Connection::new("demo").with_input("username", "alice").with_secret("password", "hunter2");
//! let preview = preview_token_request(reob, &conn, RequestKind::Login).unwrap();
//! assert_eq!(
//!     preview.body.as_deref(),
//!     Some("grant-type=password&username=alice&Password=[secret inputs.password]")
//! );
//! assert!(!preview.to_string().contains("hunter2"));
//! ```

use std::fmt;

use http::Method;

use super::encode_body;
use crate::config::{Assertion, FieldValue, Provider, TokenRequest};
use crate::connection::Connection;
use crate::error::RequestKind;
use crate::template::{Template, Var};

/// A token request as it would be sent, secrets masked.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct RequestPreview {
    /// Login or refresh.
    pub kind: RequestKind,
    /// The HTTP method.
    #[serde(serialize_with = "method_str")]
    pub method: Method,
    /// The URL, with the fields in the query for a GET.
    pub url: String,
    /// Headers in the order they are set (names lower case).
    pub headers: Vec<(String, String)>,
    /// The body, exactly encoded, secrets masked.
    pub body: Option<String>,
}

fn method_str<S: serde::Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

impl fmt::Display for RequestPreview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {}", self.method, self.url)?;
        for (name, value) in &self.headers {
            writeln!(f, "{name}: {value}")?;
        }
        if let Some(body) = &self.body {
            writeln!(f)?;
            writeln!(f, "{body}")?;
        }
        Ok(())
    }
}

/// Substitutes placeholders with values, or with markers that survive form
/// and JSON encoding and are replaced by labels afterwards.
struct Masker<'a> {
    provider: &'a Provider,
    conn: &'a Connection,
    labels: Vec<String>,
    /// What `{{ assertion }}` shows: the JWT's algorithm, headers and
    /// claims, never the signed token.
    assertion: Option<String>,
}

const MARK: &str = "TOKENAUTHMASK";

impl<'a> Masker<'a> {
    fn render(&mut self, t: &Template) -> String {
        let mut labels = std::mem::take(&mut self.labels);
        let mut marker = |label: String| {
            labels.push(label);
            format!("{MARK}{}Z", labels.len() - 1)
        };
        let mut owned: Vec<String> = Vec::new();
        for var in t.vars() {
            let value = match var {
                Var::Input(name) => {
                    let input = self.provider.input(name);
                    let secret = input.is_some_and(|i| i.secret);
                    match self.conn.value(self.provider, name) {
                        Some(_) if secret => marker(format!("[secret inputs.{name}]")),
                        Some(v) => v.to_owned(),
                        None => {
                            let how = match input.and_then(|i| i.env.as_deref()) {
                                Some(env) => format!("set ${env}"),
                                None => "supply it with the connection".to_owned(),
                            };
                            marker(format!("[inputs.{name}: not set, {how}]"))
                        }
                    }
                }
                Var::TokenAccess => marker("[access token]".to_owned()),
                Var::TokenRefresh => marker("[refresh token]".to_owned()),
                Var::Assertion => marker(
                    self.assertion
                        .clone()
                        .unwrap_or_else(|| "[signed JWT]".to_owned()),
                ),
            };
            owned.push(value);
        }
        self.labels = labels;
        let mut values = owned.iter();
        t.render(|_| values.next().map(String::as_str))
            .unwrap_or_default()
    }

    /// Replaces every marker in `text` by its label.
    fn unmask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (i, label) in self.labels.iter().enumerate().rev() {
            out = out.replace(&format!("{MARK}{i}Z"), label);
        }
        out
    }
}

/// `[signed JWT: RS256, kid=k1, claims iss=a, aud=b; exp = iat + 1h, jti random]`.
fn assertion_label(m: &mut Masker<'_>, a: &Assertion) -> String {
    let mut out = format!("[signed JWT: {}", a.algorithm.as_str());
    let shown = |m: &mut Masker<'_>, t: &Template| {
        let v = m.render(t);
        m.unmask(&v)
    };
    if let Some(kid) = &a.kid {
        out.push_str(&format!(", kid={}", shown(m, kid)));
    }
    if let Some(x5t) = &a.x5t {
        out.push_str(&format!(", x5t={}", shown(m, x5t)));
    }
    if let Some(x5t) = &a.x5t_s256 {
        out.push_str(&format!(", x5t#S256={}", shown(m, x5t)));
    }
    let claims: Vec<String> = a
        .claims
        .iter()
        .map(|(name, t)| format!("{name}={}", shown(m, t)))
        .collect();
    if !claims.is_empty() {
        out.push_str(&format!(", claims {}", claims.join(", ")));
    }
    out.push_str(&format!(
        "; exp = iat + {}, jti random]",
        humantime::format_duration(a.lifetime)
    ));
    out
}

/// The login (`kind = Login`) or refresh request `provider` would send for
/// `conn`, secrets masked. `None` when the provider has no such request.
pub fn preview_token_request(
    provider: &Provider,
    conn: &Connection,
    kind: RequestKind,
) -> Option<RequestPreview> {
    let with_scope;
    let req: &TokenRequest = match kind {
        RequestKind::Login => provider.login.as_ref()?,
        RequestKind::Refresh => &provider.refresh.as_ref()?.request,
        RequestKind::Device => {
            let device = provider.device.as_ref()?;
            if device.scopes.is_empty() {
                &device.request
            } else {
                // As sent: the scopes go in a `scope` field.
                let mut req = device.request.clone();
                let scope = device.scopes.join(&device.scope_separator);
                req.fields.push((
                    "scope".to_owned(),
                    crate::config::FieldValue::Text(crate::template::Template::literal(&scope)),
                ));
                with_scope = req;
                &with_scope
            }
        }
        RequestKind::Exchange => &provider.authorize.as_ref()?.exchange,
    };
    let mut m = Masker {
        provider,
        conn,
        labels: Vec::new(),
        assertion: None,
    };
    m.assertion = req.assertion.as_ref().map(|a| assertion_label(&mut m, a));
    let fields: Vec<(&str, FieldValue<String>)> = req
        .fields
        .iter()
        .map(|(n, v)| {
            let Ok(rendered) = v.try_map(&mut |t| Ok::<_, std::convert::Infallible>(m.render(t)));
            (n.as_str(), rendered)
        })
        .collect();
    // The connection's URL; the template as written when its inputs have no
    // (valid) values here.
    let mut url = conn.render_url(provider, &req.url).ok();
    let mut headers = vec![("accept".to_owned(), "application/json".to_owned())];
    let body = if req.method == Method::GET {
        if let Some(url) = url.as_mut().filter(|_| !fields.is_empty()) {
            let mut q = url.query_pairs_mut();
            for (n, v) in &fields {
                q.append_pair(n, v.as_text().map_or("", String::as_str));
            }
        }
        None
    } else {
        let (content_type, body) = encode_body(req.body, &fields);
        headers.push(("content-type".to_owned(), content_type.to_owned()));
        Some(m.unmask(&body))
    };
    for (name, t) in &req.headers {
        let value = m.render(t);
        headers.push((name.as_str().to_owned(), m.unmask(&value)));
    }
    if let Some(basic) = &req.basic {
        let user = m.render(&basic.username);
        let pass = m.render(&basic.password);
        headers.push((
            "authorization".to_owned(),
            m.unmask(&match basic.form_encode {
                true => format!("Basic base64({user}:{pass}, each form-encoded)"),
                false => format!("Basic base64({user}:{pass})"),
            }),
        ));
    }
    Some(RequestPreview {
        kind,
        method: req.method.clone(),
        url: match &url {
            Some(url) => m.unmask(url.as_str()),
            None => req.url.source().to_owned(),
        },
        headers,
        body,
    })
}

/// Where and how the credential is attached, secrets masked: one
/// `(name, value)` per part, in the order they are attached: a header's
/// name and value, or a query parameter as `?name` and its value.
pub fn preview_injection(provider: &Provider, conn: &Connection) -> Vec<(String, String)> {
    let mut m = Masker {
        provider,
        conn,
        labels: Vec::new(),
        assertion: None,
    };
    let inject = &provider.inject;
    let mut out = Vec::new();
    if let Some((name, value)) = &inject.header {
        let v = m.render(value);
        out.push((name.as_str().to_owned(), m.unmask(&v)));
    }
    if let Some(b) = &inject.basic {
        let user = m.render(&b.username);
        let pass = m.render(&b.password);
        out.push((
            "authorization".to_owned(),
            m.unmask(&format!("Basic base64({user}:{pass})")),
        ));
    }
    for (name, value) in &inject.headers {
        let v = m.render(value);
        out.push((name.as_str().to_owned(), m.unmask(&v)));
    }
    for (name, value) in &inject.query {
        let v = m.render(value);
        out.push((format!("?{name}"), m.unmask(&v)));
    }
    out
}
