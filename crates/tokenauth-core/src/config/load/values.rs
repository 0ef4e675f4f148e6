//! The value types of the language: each parser checks one value and says
//! what is wrong with it, and each `Table` method takes a key of that type
//! (recording its shape for the schema) and parses it.

use std::time::Duration;

use http::{HeaderName, Method};
use url::Url;

use super::inputs::Scope;
use super::report::{Ctx, did_you_mean};
use super::table::{Shape, Str, Table};
use super::tree::{Kind, Node};
use crate::config::model::{JsonPointer, MAX_DURATION};
use crate::template::{Template, Var};
use crate::url_template::UrlTemplate;

/// Which `token.*` placeholders a template may use where it stands.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenVars {
    None,
    Access,
    Refresh,
}

// The schema's patterns: what a JSON Schema can say of each value type.
/// An http(s) URL; `{{ inputs.NAME }}` placeholders (with their spaces)
/// in the host, path and query.
const URL_PATTERN: &str = r"^https?://([^\s@/?#{]|\{\{[^}]*\}\})+(/([^\s?#{]|\{\{[^}]*\}\})*)?(\?([^\s#{]|\{\{[^}]*\}\})*)?$";
const DURATION_PATTERN: &str = r"^\s*([0-9]+\s*[a-zA-Zµ]+\s*)+$";
pub(super) const SKEW_PATTERN: &str =
    r"^\s*(([1-9]|[1-8][0-9]|90)\s*%|([0-9]+\s*[a-zA-Zµ]+\s*)+)\s*$";
const POINTER_PATTERN: &str = "^(/([^~]|~[01])*)*$";
pub(super) const HEADER_NAME_PATTERN: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
pub(super) const ENV_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";
const METHODS: [&str; 14] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "get", "post", "put", "patch",
    "delete", "head", "options",
];

/// The shapes of the value types, for the schema.
pub(super) mod shape {
    use super::*;

    pub(in super::super) fn string() -> Shape {
        Shape::Str {
            pattern: None,
            note: None,
        }
    }

    pub(in super::super) fn pattern(pattern: &'static str) -> Shape {
        Shape::Str {
            pattern: Some(pattern),
            note: None,
        }
    }

    pub(in super::super) fn url() -> Shape {
        Shape::Str {
            pattern: Some(URL_PATTERN),
            note: Some(
                "An absolute https:// URL (http:// only for loopback or with allow_insecure_http); {{ inputs.NAME }} may stand in the host, a path segment or a query value.",
            ),
        }
    }

    pub(in super::super) fn url_list() -> Shape {
        Shape::OneOrList {
            item: Box::new(url()),
            non_empty: true,
        }
    }

    pub(in super::super) fn duration() -> Shape {
        Shape::Str {
            pattern: Some(DURATION_PATTERN),
            note: Some(
                "A duration with a unit: \"500ms\", \"30s\", \"60m\", \"1h 30m\"; at most \"10y\".",
            ),
        }
    }

    pub(in super::super) fn pointer() -> Shape {
        Shape::Str {
            pattern: Some(POINTER_PATTERN),
            note: Some("An RFC 6901 JSON Pointer into the token reply, e.g. \"/access_token\"."),
        }
    }

    pub(in super::super) fn template() -> Shape {
        Shape::Str {
            pattern: None,
            note: Some(
                "A template: literal text with {{ inputs.NAME }}, {{ token.access }} or {{ token.refresh }} placeholders.",
            ),
        }
    }

    pub(in super::super) fn statuses() -> Shape {
        Shape::OneOrList {
            item: Box::new(Shape::Integer { min: 100, max: 599 }),
            non_empty: true,
        }
    }
}

impl<'a, 'i> Table<'a, 'i> {
    /// A string.
    pub(super) fn str(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &'static str,
        doc: &'static str,
    ) -> Option<Str<'a>> {
        self.str_shaped(ctx, key, doc, shape::string)
    }

    /// A string the schema constrains further (`shape`); the caller checks it.
    pub(super) fn str_shaped(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &'static str,
        doc: &'static str,
        shape: impl FnOnce() -> Shape,
    ) -> Option<Str<'a>> {
        let node = self.take(ctx, key, doc, shape)?;
        expect_str(ctx, node, &self.child_path(key), key)
    }

    /// `true` or `false`.
    pub(super) fn bool(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &'static str,
        doc: &'static str,
    ) -> Option<bool> {
        let node = self.take(ctx, key, doc, || Shape::Bool)?;
        match node.kind {
            Kind::Boolean(b) => Some(b),
            _ => {
                ctx.error(
                    node.at(),
                    &self.child_path(key),
                    format!("expected `true` or `false`, found {}", node.type_name()),
                    None,
                );
                None
            }
        }
    }

    /// One of `choices`: `Some(Err(..))` for a string that is none of them,
    /// which the caller reports with a message that knows the key.
    pub(super) fn choice<T: Copy>(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &'static str,
        doc: &'static str,
        choices: &[(&'static str, T)],
    ) -> Option<Result<T, Str<'a>>> {
        let names = || Shape::Choice(choices.iter().map(|(n, _)| *n).collect());
        let (text, span) = self.str_shaped(ctx, key, doc, names)?;
        Some(
            choices
                .iter()
                .find(|(n, _)| *n == text)
                .map(|(_, v)| *v)
                .ok_or((text, span)),
        )
    }

    /// A duration with a unit, above zero and at most [`MAX_DURATION`].
    pub(super) fn duration(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &'static str,
        doc: &'static str,
    ) -> Option<Duration> {
        let node = self.take(ctx, key, doc, shape::duration)?;
        duration(ctx, node, &self.child_path(key), key)
    }

    /// An RFC 6901 JSON Pointer.
    pub(super) fn pointer(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &'static str,
        doc: &'static str,
    ) -> Option<JsonPointer> {
        let node = self.take(ctx, key, doc, shape::pointer)?;
        let path = self.child_path(key);
        let (text, span) = expect_str(ctx, node, &path, key)?;
        match JsonPointer::parse(text) {
            Ok(p) => Some(p),
            Err(message) => {
                ctx.error(
                    span.start,
                    &path,
                    message,
                    Some("a JSON Pointer (RFC 6901) names a key path from the root: \"/access_token\", \"/data/token\"".into()),
                );
                None
            }
        }
    }

    /// An HTTP method, any case; `None` when absent or wrong (reported).
    pub(super) fn method(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &'static str,
        doc: &'static str,
    ) -> Option<Method> {
        let choices = || Shape::Choice(METHODS.to_vec());
        let (text, span) = self.str_shaped(ctx, key, doc, choices)?;
        let upper = text.to_ascii_uppercase();
        if METHODS.contains(&upper.as_str()) {
            return Method::from_bytes(upper.as_bytes()).ok();
        }
        ctx.error(
            span.start,
            &self.child_path(key),
            format!("`{text}` is not an HTTP method"),
            Some("use GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS".into()),
        );
        None
    }

    /// A list of HTTP statuses: `401` or `[400, 401]`.
    pub(super) fn statuses(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &'static str,
        doc: &'static str,
    ) -> Option<Vec<u16>> {
        let value = self.take(ctx, key, doc, shape::statuses)?;
        let path = self.child_path(key);
        let mut out = Vec::new();
        for item in one_or_list(value) {
            match item.kind {
                Kind::Integer(Some(n)) if (100..=599).contains(&n) => out.push(n as u16),
                _ => ctx.error(
                    item.at(),
                    &path,
                    "expected an HTTP status code (an integer from 100 to 599)",
                    Some(format!("e.g. {key} = [401] or {key} = [400, 401]")),
                ),
            }
        }
        if out.is_empty() && matches!(&value.kind, Kind::Array(a) if a.is_empty()) {
            ctx.error(
                value.at(),
                &path,
                "the list of statuses is empty",
                Some("name at least one status, or leave the key out for the default".into()),
            );
        }
        Some(out)
    }

    /// A string or a list of strings; each item of `item` shape.
    pub(super) fn strings(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &'static str,
        doc: &'static str,
        item: impl FnOnce() -> Shape,
        non_empty: bool,
    ) -> Option<(&'a Node<'i>, Vec<Str<'a>>)> {
        let value = self.take(ctx, key, doc, || Shape::OneOrList {
            item: Box::new(item()),
            non_empty,
        })?;
        let path = self.child_path(key);
        let mut out = Vec::new();
        for item in one_or_list(value) {
            match &item.kind {
                Kind::String(s) => out.push((s.as_ref(), item.span.clone())),
                _ => ctx.error(
                    item.at(),
                    &path,
                    format!("expected a string, found {}", item.type_name()),
                    None,
                ),
            }
        }
        Some((value, out))
    }

    /// An absolute URL, perhaps with input placeholders (see [`check_url`]).
    pub(super) fn url(
        &mut self,
        ctx: &mut Ctx<'_>,
        scope: &Scope<'_>,
        key: &'static str,
        doc: &'static str,
        insecure_ok: bool,
    ) -> Option<UrlTemplate> {
        let (text, span) = self.str_shaped(ctx, key, doc, shape::url)?;
        check_url(ctx, scope, text, &span, &self.child_path(key), insecure_ok)
    }

    /// A template whose placeholders `scope` and `tokens` allow.
    pub(super) fn template(
        &mut self,
        ctx: &mut Ctx<'_>,
        scope: &Scope<'_>,
        key: &'static str,
        doc: &'static str,
        tokens: TokenVars,
    ) -> Option<Template> {
        let node = self.take(ctx, key, doc, shape::template)?;
        template(ctx, scope, node, &self.child_path(key), key, tokens)
    }
}

/// The items of a value that may be one item or a list.
fn one_or_list<'a, 'i>(value: &'a Node<'i>) -> Vec<&'a Node<'i>> {
    match &value.kind {
        Kind::Array(items) => items.iter().collect(),
        _ => vec![value],
    }
}

pub(super) fn expect_str<'a>(
    ctx: &mut Ctx<'_>,
    node: &'a Node<'_>,
    path: &str,
    key: &str,
) -> Option<Str<'a>> {
    match &node.kind {
        Kind::String(s) => Some((s.as_ref(), node.span.clone())),
        _ => {
            ctx.error(
                node.at(),
                path,
                format!("expected a string, found {}", node.type_name()),
                Some(format!("quote the value: {key} = \"...\"")),
            );
            None
        }
    }
}

/// A duration with a unit: `"60m"`, `"1h 30m"`.
pub(super) fn duration(
    ctx: &mut Ctx<'_>,
    node: &Node<'_>,
    path: &str,
    key: &str,
) -> Option<Duration> {
    if let Kind::Integer(_) | Kind::Float(_) = node.kind {
        ctx.error(
            node.at(),
            path,
            "a duration needs a unit",
            Some(format!(
                "write it as a string with a unit, e.g. {key} = \"60m\", \"90s\" or \"1h 30m\""
            )),
        );
        return None;
    }
    let (text, span) = expect_str(ctx, node, path, key)?;
    match humantime::parse_duration(text) {
        Ok(d) if d > MAX_DURATION => {
            ctx.error(
                span.start,
                path,
                format!("`{text}` is longer than the limit of 10 years"),
                Some(format!(
                    "use a duration of at most \"10y\"; a {key} is normally seconds to hours, e.g. {key} = \"{}\"",
                    if key == "ttl" { "60m" } else { "30s" }
                )),
            );
            None
        }
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            ctx.error(
                span.start,
                path,
                "a duration of zero is not allowed",
                Some("use a positive duration such as \"30s\"".into()),
            );
            None
        }
        Err(e) => {
            ctx.error(
                span.start,
                path,
                format!("`{text}` is not a duration ({e})"),
                Some("use a number with a unit: \"500ms\", \"30s\", \"60m\", \"1h 30m\"".into()),
            );
            None
        }
    }
}

/// Parses a template string and checks its placeholders against `scope`.
pub(super) fn template(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    node: &Node<'_>,
    path: &str,
    key: &str,
    tokens: TokenVars,
) -> Option<Template> {
    let (text, span) = expect_str(ctx, node, path, key)?;
    // Point inside the string when the raw text maps byte for byte (a plain
    // quoted string without escapes); otherwise at the string's start.
    let raw = ctx.raw(&span);
    let maps_exactly = raw.len() == text.len() + 2 && !raw.contains('\\');
    let inner_at = |offset: usize| {
        if maps_exactly {
            span.start + 1 + offset
        } else {
            span.start
        }
    };
    let template = match Template::parse(text) {
        Ok(t) => t,
        Err(e) => {
            ctx.error(inner_at(e.offset), path, e.message, None);
            return None;
        }
    };
    let mut ok = true;
    for var in template.vars() {
        let problem = match var {
            Var::Input(name) if !scope.inputs.declares(name) => {
                let names: Vec<&str> = scope.inputs.list.iter().map(|i| i.name.as_str()).collect();
                let help = match did_you_mean(name, &names) {
                    Some(s) => format!("did you mean `inputs.{s}`?"),
                    None => format!(
                        "declare it under [providers.{}.inputs], e.g. {name} = {{ env = \"{}\" }}",
                        scope.provider,
                        env_name(scope.provider, name)
                    ),
                };
                Some((
                    format!("`{{{{ inputs.{name} }}}}` names an input that is not declared"),
                    help,
                ))
            }
            Var::TokenAccess if tokens != TokenVars::Access => Some(if scope.fetches {
                (
                    "`{{ token.access }}` cannot be used here".to_owned(),
                    "the access token is only known in [inject] templates".to_owned(),
                )
            } else {
                (
                    "`{{ token.access }}` used by a provider without a [login] or [refresh] table".to_owned(),
                    "a provider with static credentials injects its inputs directly, e.g. password = \"{{ inputs.token }}\"".to_owned(),
                )
            }),
            Var::Assertion if !scope.has_assertion => Some((
                "`{{ assertion }}` used by a provider without a [login.assertion] table".to_owned(),
                format!(
                    "add [providers.{}.login.assertion] with algorithm, key, claims and lifetime: it says how to sign the JWT this placeholder sends",
                    scope.provider
                ),
            )),
            Var::Assertion if !scope.assertion_here => Some((
                "`{{ assertion }}` cannot be used here".to_owned(),
                "the signed JWT is only sent in [login] and [refresh] fields, headers and basic"
                    .to_owned(),
            )),
            Var::TokenRefresh if tokens != TokenVars::Refresh => Some((
                "`{{ token.refresh }}` cannot be used here".to_owned(),
                "the refresh token is only known in [refresh] fields, headers and basic".to_owned(),
            )),
            _ => None,
        };
        if let Some((message, help)) = problem {
            let offset = template.source().find(&format!("{var}")).unwrap_or(0);
            ctx.error(
                inner_at(offset.saturating_sub(3)),
                path,
                message,
                Some(help),
            );
            ok = false;
        }
    }
    ok.then_some(template)
}

fn env_name(provider: &str, input: &str) -> String {
    format!("{provider}_{input}")
        .to_ascii_uppercase()
        .replace('-', "_")
}

/// Parses and checks a URL template: absolute, http(s), no credentials,
/// https unless loopback or the provider opted out; placeholders only where
/// [`UrlTemplate`] allows them, naming declared, non-secret inputs.
pub(super) fn check_url(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    text: &str,
    span: &std::ops::Range<usize>,
    path: &str,
    insecure_ok: bool,
) -> Option<UrlTemplate> {
    let template = match UrlTemplate::parse(text) {
        Ok(t) => t,
        Err(e) => {
            ctx.error(span.start, path, e.message, e.help);
            return None;
        }
    };
    let mut ok = true;
    for (name, place) in template.inputs() {
        let declared = scope.inputs.list.iter().find(|i| i.name == name);
        if declared.is_some_and(|i| i.secret) {
            ctx.error(
                span.start,
                path,
                format!("the secret input `{name}` cannot be part of a URL: URLs are logged and shown in errors"),
                Some(format!("send it in a field, a header or [inject] instead; if `{name}` is not secret (a tenant, a region), drop `secret = true`")),
            );
            ok = false;
        } else if declared.is_none() && !scope.inputs.declares(name) {
            let names: Vec<&str> = scope.inputs.list.iter().map(|i| i.name.as_str()).collect();
            let help = match did_you_mean(name, &names) {
                Some(s) => format!("did you mean `inputs.{s}`?"),
                None => format!(
                    "declare it under [providers.{}.inputs], e.g. {name} = {{ env = \"{}\" }}",
                    scope.provider,
                    env_name(scope.provider, name)
                ),
            };
            ctx.error(
                span.start,
                path,
                format!("`{{{{ inputs.{name} }}}}` (in the {place} of the URL) names an input that is not declared"),
                Some(help),
            );
            ok = false;
        }
    }
    for (name, place) in template.inputs() {
        let default = scope
            .inputs
            .list
            .iter()
            .find(|i| i.name == name)
            .and_then(|i| i.default.as_deref());
        if let Some(why) = default.and_then(|d| crate::url_template::unfit(place, d)) {
            ctx.error(
                span.start,
                path,
                format!("the default of input `{name}` cannot go into the {place} of this URL: {why}"),
                Some(match place {
                    crate::url_template::UrlPlace::Origin => format!("give `{name}` a default that fits: an origin such as \"https://git.example.com\""),
                    crate::url_template::UrlPlace::Host => format!("give `{name}` a default that fits, e.g. a host name such as \"acme\" (letters, digits, `-` and `.`)"),
                    _ => format!("give `{name}` a default that fits: one path segment, not empty, without `/` or `\\`"),
                }),
            );
            ok = false;
        }
    }
    let url = template.sample();
    let shown = template.source();
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(url) || insecure_ok => {}
        "http" => {
            let why = if template.templated_host() {
                "its host comes from an input, so it may be anywhere: "
            } else {
                ""
            };
            ctx.error(
                span.start,
                path,
                format!("`{shown}` uses plain http: {why}credentials would cross the network unencrypted"),
                Some("use https://, or set `allow_insecure_http = true` on this provider if you really mean it".into()),
            );
            return None;
        }
        other => {
            ctx.error(
                span.start,
                path,
                format!("unsupported URL scheme `{other}`"),
                Some("use https://".into()),
            );
            return None;
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        ctx.error(
            span.start,
            path,
            "the URL carries a user name or password",
            Some("remove them from the URL: credentials go in [inputs]".into()),
        );
        return None;
    }
    if url.host_str().is_none_or(str::is_empty) {
        ctx.error(span.start, path, format!("`{shown}` has no host"), None);
        return None;
    }
    ok.then_some(template)
}

/// True for `localhost`, 127.0.0.0/8 and `[::1]`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

pub(super) fn header_name(
    ctx: &mut Ctx<'_>,
    name: &str,
    at: usize,
    path: &str,
) -> Option<HeaderName> {
    match HeaderName::from_bytes(name.as_bytes()) {
        Ok(h) => Some(h),
        Err(_) => {
            ctx.error(
                at,
                path,
                format!("`{name}` is not a valid HTTP header name"),
                Some("header names are letters, digits and `-`, e.g. \"Authorization\"".into()),
            );
            None
        }
    }
}

/// The messages of an `action` key whose choices are one action that needs a
/// login (`login` / `renew`) and `"fail"`.
pub(super) struct ActionMessages {
    pub(super) needs_login: &'static str,
    pub(super) needs_login_help: &'static str,
    pub(super) unknown_help: &'static str,
}

/// Reads an `action` key (see [`ActionMessages`]). Absent: the login action
/// when the provider logs in, else `"fail"`.
pub(super) fn action<T: Copy>(
    ctx: &mut Ctx<'_>,
    table: &mut Table<'_, '_>,
    doc: &'static str,
    has_login: bool,
    (login_name, login_value): (&'static str, T),
    fail_value: T,
    messages: ActionMessages,
) -> T {
    let choices = [(login_name, login_value), ("fail", fail_value)];
    match table.choice(ctx, "action", doc, &choices) {
        Some(Ok(value)) => {
            if !has_login
                && let Some(node) = table.peek("action")
                && matches!(&node.kind, Kind::String(s) if s == login_name)
            {
                ctx.error(
                    node.at(),
                    &table.child_path("action"),
                    messages.needs_login,
                    Some(messages.needs_login_help.into()),
                );
            }
            value
        }
        Some(Err((other, span))) => {
            ctx.error(
                span.start,
                &table.child_path("action"),
                format!("unknown action `{other}`"),
                Some(messages.unknown_help.into()),
            );
            fail_value
        }
        None if has_login => login_value,
        None => fail_value,
    }
}
