//! The loader: TOML text -> [`Providers`], collecting every problem at once.
//!
//! The file is parsed into a spanned tree and walked by hand (not with serde
//! derive) so that one mistake does not hide the next: every unknown key, bad
//! template, pointer, duration and URL in the file is reported in one go, each
//! with its line, column and key path.

use std::collections::BTreeMap;
use std::ops::Range;
use std::rc::Rc;
use std::time::Duration;

use http::{HeaderName, Method};
use toml::Spanned;
use toml::de::{DeTable, DeValue};
use url::Url;

use super::error::{ConfigErrors, Diagnostic};
use super::model::*;
use crate::template::{Template, Var};

type Value<'i> = Spanned<DeValue<'i>>;

/// Which `token.*` placeholders a template may use where it stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TokenVars {
    None,
    Access,
    Refresh,
}

/// A problem found while walking the tree, still at its byte offset: the
/// line and column are computed once, for all problems together, in
/// [`finish`] (so that reporting stays linear in the size of the file even
/// with many problems on one long line).
#[derive(PartialEq, Eq)]
struct Pending {
    at: usize,
    path: String,
    message: String,
    help: Help,
}

/// A problem's help line. A did-you-mean is only worked out for the problems
/// that are reported, not for every one of thousands of unknown keys.
#[derive(PartialEq, Eq)]
enum Help {
    Text(Option<String>),
    /// `name` is not one of `allowed`, the keys `what` accepts.
    Suggest {
        name: String,
        allowed: Rc<[&'static str]>,
        what: &'static str,
    },
}

impl Help {
    fn render(self) -> Option<String> {
        match self {
            Help::Text(text) => text,
            Help::Suggest {
                name,
                allowed,
                what,
            } => Some(match did_you_mean(&name, &allowed) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("{what} accepts: {}", allowed.join(", ")),
            }),
        }
    }
}

struct Ctx<'s> {
    file: &'s str,
    src: &'s str,
    /// The byte offset where each line starts, computed once.
    line_starts: Vec<usize>,
    pending: Vec<Pending>,
}

/// At most this many problems are listed; the rest are counted
/// ([`ConfigErrors::omitted`]).
pub(crate) const MAX_REPORTED: usize = 200;

impl<'s> Ctx<'s> {
    fn new(file: &'s str, src: &'s str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Ctx {
            file,
            src,
            line_starts,
            pending: Vec::new(),
        }
    }

    /// The 1-based line of a byte offset (a binary search of the line index).
    fn line(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|&s| s <= offset.min(self.src.len()))
    }

    fn error(&mut self, at: usize, path: &str, message: impl Into<String>, help: Option<String>) {
        self.problem(at, path, message.into(), Help::Text(help));
    }

    fn problem(&mut self, at: usize, path: &str, message: String, help: Help) {
        self.pending.push(Pending {
            at: at.min(self.src.len()),
            path: path.to_owned(),
            message,
            help,
        });
    }

    /// The number of problems found so far.
    fn errors(&self) -> usize {
        self.pending.len()
    }

    /// The source text of a span, for deciding where inside a string an error is.
    fn raw(&self, span: &Range<usize>) -> &str {
        self.src.get(span.clone()).unwrap_or("")
    }
}

/// Turns byte offsets into line and column, for offsets given in increasing
/// order: each character of the file is counted at most once over all calls.
struct Cursor<'c> {
    src: &'c str,
    line_starts: &'c [usize],
    /// The current 1-based line, the offset reached and its 1-based column.
    line: usize,
    at: usize,
    column: usize,
}

impl<'c> Cursor<'c> {
    fn new(src: &'c str, line_starts: &'c [usize]) -> Self {
        Cursor {
            src,
            line_starts,
            line: 1,
            at: 0,
            column: 1,
        }
    }

    /// Line and column (in characters) of `offset`; `offset` must not be
    /// below the previous call's.
    fn position(&mut self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.src.len());
        while !self.src.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset);
        if line != self.line || offset < self.at {
            self.line = line;
            self.at = self.line_starts[line - 1];
            self.column = 1;
        }
        self.column += self.src[self.at..offset].chars().count();
        self.at = offset;
        (self.line, self.column)
    }
}

/// A table being read: its entries, its position and its key path.
struct Table<'a, 'i> {
    entries: &'a DeTable<'i>,
    at: usize,
    path: String,
}

impl<'a, 'i> Table<'a, 'i> {
    fn child_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.entries.get(key)
    }

    /// Reports every key not in `allowed`, with a did-you-mean.
    fn check_keys(&self, ctx: &mut Ctx<'_>, allowed: &[&'static str], what: &'static str) {
        let mut shared: Option<Rc<[&'static str]>> = None;
        for key in self.entries.keys() {
            let name: &str = key.get_ref();
            if allowed.contains(&name) {
                continue;
            }
            let allowed = shared.get_or_insert_with(|| allowed.into()).clone();
            ctx.problem(
                key.span().start,
                &self.child_path(name),
                format!("unknown key `{name}`"),
                Help::Suggest {
                    name: name.to_owned(),
                    allowed,
                    what,
                },
            );
        }
    }
}

/// Letters, digits, `_` and `-`, at least one: what ids, input names and
/// bare path segments may be.
fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn join(path: &str, key: &str) -> String {
    let key = if is_identifier(key) {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

fn did_you_mean<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let wanted = norm(name);
    candidates
        .iter()
        .map(|c| (c, strsim::damerau_levenshtein(&wanted, &norm(c))))
        .filter(|(c, d)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(_, d)| *d)
        .map(|(c, _)| *c)
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn expect_table<'a, 'i>(
    ctx: &mut Ctx<'_>,
    value: &'a Value<'i>,
    path: String,
) -> Option<Table<'a, 'i>> {
    match value.get_ref() {
        DeValue::Table(entries) => Some(Table {
            entries,
            at: value.span().start,
            path,
        }),
        other => {
            ctx.error(
                value.span().start,
                &path,
                format!("expected a table, found {}", type_name(other)),
                Some(format!("write it as `[{path}]` with keys below it, or as an inline table `{{ key = \"value\" }}`")),
            );
            None
        }
    }
}

fn child_table<'a, 'i>(
    ctx: &mut Ctx<'_>,
    parent: &Table<'a, 'i>,
    key: &str,
) -> Option<Table<'a, 'i>> {
    parent
        .get(key)
        .and_then(|v| expect_table(ctx, v, parent.child_path(key)))
}

fn get_str<'a>(
    ctx: &mut Ctx<'_>,
    table: &Table<'a, '_>,
    key: &str,
) -> Option<(&'a str, Range<usize>)> {
    let value = table.get(key)?;
    match value.get_ref() {
        DeValue::String(s) => Some((s.as_ref(), value.span())),
        other => {
            ctx.error(
                value.span().start,
                &table.child_path(key),
                format!("expected a string, found {}", type_name(other)),
                Some(format!("quote the value: {key} = \"...\"")),
            );
            None
        }
    }
}

fn get_bool(ctx: &mut Ctx<'_>, table: &Table<'_, '_>, key: &str) -> Option<bool> {
    let value = table.get(key)?;
    match value.get_ref() {
        DeValue::Boolean(b) => Some(*b),
        other => {
            ctx.error(
                value.span().start,
                &table.child_path(key),
                format!("expected `true` or `false`, found {}", type_name(other)),
                None,
            );
            None
        }
    }
}

fn require<T>(
    ctx: &mut Ctx<'_>,
    table: &Table<'_, '_>,
    key: &str,
    value: Option<T>,
    help: &str,
) -> Option<T> {
    if value.is_none() && table.get(key).is_none() {
        ctx.error(
            table.at,
            &table.path,
            format!("missing key `{key}`"),
            Some(help.to_owned()),
        );
    }
    value
}

fn get_duration(ctx: &mut Ctx<'_>, table: &Table<'_, '_>, key: &str) -> Option<Duration> {
    if let Some(v) = table.get(key)
        && let DeValue::Integer(_) | DeValue::Float(_) = v.get_ref()
    {
        ctx.error(
            v.span().start,
            &table.child_path(key),
            "a duration needs a unit",
            Some(format!(
                "write it as a string with a unit, e.g. {key} = \"60m\", \"90s\" or \"1h 30m\""
            )),
        );
        return None;
    }
    let (text, span) = get_str(ctx, table, key)?;
    match humantime::parse_duration(text) {
        Ok(d) if d > MAX_DURATION => {
            ctx.error(
                span.start,
                &table.child_path(key),
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
                &table.child_path(key),
                "a duration of zero is not allowed",
                Some("use a positive duration such as \"30s\"".into()),
            );
            None
        }
        Err(e) => {
            ctx.error(
                span.start,
                &table.child_path(key),
                format!("`{text}` is not a duration ({e})"),
                Some("use a number with a unit: \"500ms\", \"30s\", \"60m\", \"1h 30m\"".into()),
            );
            None
        }
    }
}

fn get_pointer(ctx: &mut Ctx<'_>, table: &Table<'_, '_>, key: &str) -> Option<JsonPointer> {
    let (text, span) = get_str(ctx, table, key)?;
    match JsonPointer::parse(text) {
        Ok(p) => Some(p),
        Err(message) => {
            ctx.error(
                span.start,
                &table.child_path(key),
                message,
                Some("a JSON Pointer (RFC 6901) names a key path from the root: \"/access_token\", \"/data/token\"".into()),
            );
            None
        }
    }
}

fn get_method(ctx: &mut Ctx<'_>, table: &Table<'_, '_>, key: &str, default: Method) -> Method {
    let Some((text, span)) = get_str(ctx, table, key) else {
        return default;
    };
    let upper = text.to_ascii_uppercase();
    match upper.as_str() {
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => {
            Method::from_bytes(upper.as_bytes()).unwrap_or(default)
        }
        _ => {
            ctx.error(
                span.start,
                &table.child_path(key),
                format!("`{text}` is not an HTTP method"),
                Some("use GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS".into()),
            );
            default
        }
    }
}

/// A list of HTTP statuses: `401` or `[400, 401]`.
fn get_statuses(ctx: &mut Ctx<'_>, table: &Table<'_, '_>, key: &str) -> Option<Vec<u16>> {
    let value = table.get(key)?;
    let path = table.child_path(key);
    let items: Vec<&Value<'_>> = match value.get_ref() {
        DeValue::Array(items) => items.iter().collect(),
        _ => vec![value],
    };
    let mut out = Vec::new();
    for item in items {
        let parsed = match item.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => None,
        };
        match parsed {
            Some(n) if (100..=599).contains(&n) => out.push(n as u16),
            _ => ctx.error(
                item.span().start,
                &path,
                "expected an HTTP status code (an integer from 100 to 599)",
                Some(format!("e.g. {key} = [401] or {key} = [400, 401]")),
            ),
        }
    }
    if out.is_empty() && matches!(value.get_ref(), DeValue::Array(a) if a.is_empty()) {
        ctx.error(
            value.span().start,
            &path,
            "the list of statuses is empty",
            Some("name at least one status, or leave the key out for the default".into()),
        );
    }
    Some(out)
}

fn get_string_list(
    ctx: &mut Ctx<'_>,
    table: &Table<'_, '_>,
    key: &str,
) -> Vec<(String, Range<usize>)> {
    let Some(value) = table.get(key) else {
        return Vec::new();
    };
    let path = table.child_path(key);
    let items: Vec<&Value<'_>> = match value.get_ref() {
        DeValue::Array(items) => items.iter().collect(),
        _ => vec![value],
    };
    let mut out = Vec::new();
    for item in items {
        match item.get_ref() {
            DeValue::String(s) => out.push((s.to_string(), item.span())),
            other => ctx.error(
                item.span().start,
                &path,
                format!("expected a string, found {}", type_name(other)),
                None,
            ),
        }
    }
    out
}

/// What a provider's templates may refer to.
struct Scope<'p> {
    provider: &'p str,
    inputs: &'p Inputs,
    /// The provider fetches tokens: it has a `[login]` or a `[refresh]`
    /// table (a refresh-only provider starts from a stored refresh token).
    fetches: bool,
}

fn parse_template(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    text: &str,
    span: &Range<usize>,
    path: &str,
    tokens: TokenVars,
) -> Option<Template> {
    // Point inside the string when the raw text maps byte for byte (a plain
    // quoted string without escapes); otherwise at the string's start.
    let raw = ctx.raw(span);
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

fn get_template(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &Table<'_, '_>,
    key: &str,
    tokens: TokenVars,
) -> Option<Template> {
    let (text, span) = get_str(ctx, table, key)?;
    parse_template(ctx, scope, text, &span, &table.child_path(key), tokens)
}

/// Parses and checks a URL: absolute, http(s), no credentials, https unless
/// loopback or the provider opted out.
fn check_url(
    ctx: &mut Ctx<'_>,
    text: &str,
    span: &Range<usize>,
    path: &str,
    insecure_ok: bool,
) -> Option<Url> {
    let url = match Url::parse(text) {
        Ok(u) => u,
        Err(e) => {
            ctx.error(
                span.start,
                path,
                format!("`{text}` is not a valid absolute URL ({e})"),
                Some("write the full URL, e.g. \"https://api.example.com/\"".into()),
            );
            return None;
        }
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) || insecure_ok => {}
        "http" => {
            ctx.error(
                span.start,
                path,
                format!("`{text}` uses plain http: credentials would cross the network unencrypted"),
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
        ctx.error(span.start, path, format!("`{text}` has no host"), None);
        return None;
    }
    Some(url)
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

fn get_url(ctx: &mut Ctx<'_>, table: &Table<'_, '_>, key: &str, insecure_ok: bool) -> Option<Url> {
    let (text, span) = get_str(ctx, table, key)?;
    check_url(ctx, text, &span, &table.child_path(key), insecure_ok)
}

fn header_name(ctx: &mut Ctx<'_>, name: &str, at: usize, path: &str) -> Option<HeaderName> {
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

/// `fields` / `headers`: a table of name -> template, in file order.
fn template_map(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    parent: &Table<'_, '_>,
    key: &str,
    tokens: TokenVars,
) -> Vec<(String, Range<usize>, Template)> {
    let Some(table) = child_table(ctx, parent, key) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in table.entries {
        let name: &str = k.get_ref();
        let path = table.child_path(name);
        match v.get_ref() {
            DeValue::String(s) => {
                if let Some(t) = parse_template(ctx, scope, s, &v.span(), &path, tokens) {
                    out.push((name.to_owned(), k.span(), t));
                }
            }
            other => ctx.error(
                v.span().start,
                &path,
                format!("expected a string, found {}", type_name(other)),
                Some(format!(
                    "values are sent as text: write \"{name}\" = \"...\""
                )),
            ),
        }
    }
    out
}

fn headers(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    parent: &Table<'_, '_>,
    tokens: TokenVars,
) -> Vec<(HeaderName, Template)> {
    let path = parent.child_path("headers");
    template_map(ctx, scope, parent, "headers", tokens)
        .into_iter()
        .filter_map(|(name, span, t)| {
            Some((header_name(ctx, &name, span.start, &join(&path, &name))?, t))
        })
        .collect()
}

fn basic(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    parent: &Table<'_, '_>,
    tokens: TokenVars,
) -> Option<BasicAuth> {
    let table = child_table(ctx, parent, "basic")?;
    table.check_keys(ctx, &["username", "password"], "basic");
    let username = get_template(ctx, scope, &table, "username", tokens);
    let username = require(
        ctx,
        &table,
        "username",
        username,
        "basic needs username = \"...\" and password = \"...\"",
    );
    let password = get_template(ctx, scope, &table, "password", tokens);
    let password = require(
        ctx,
        &table,
        "password",
        password,
        "basic needs username = \"...\" and password = \"...\"",
    );
    Some(BasicAuth {
        username: username?,
        password: password?,
    })
}

fn body_format(ctx: &mut Ctx<'_>, table: &Table<'_, '_>) -> Option<BodyFormat> {
    let (text, span) = get_str(ctx, table, "body")?;
    match text {
        "form" => Some(BodyFormat::Form),
        "json" => Some(BodyFormat::Json),
        _ => {
            ctx.error(
                span.start,
                &table.child_path("body"),
                format!("unknown body format `{text}`"),
                Some("use \"form\" (application/x-www-form-urlencoded) or \"json\"".into()),
            );
            None
        }
    }
}

/// Reads an `action` key whose choices are one action that needs a login
/// (`login` / `renew`) and `"fail"`. Absent: the login action when the
/// provider logs in, else `"fail"`.
#[allow(clippy::too_many_arguments)]
fn get_action<T: Copy>(
    ctx: &mut Ctx<'_>,
    table: &Table<'_, '_>,
    has_login: bool,
    (login_name, login_value): (&str, T),
    fail_value: T,
    needs_login: &str,
    needs_login_help: &str,
    unknown_help: &str,
) -> T {
    match get_str(ctx, table, "action") {
        Some((name, span)) if name == login_name => {
            if !has_login {
                ctx.error(
                    span.start,
                    &table.child_path("action"),
                    needs_login,
                    Some(needs_login_help.into()),
                );
            }
            login_value
        }
        Some(("fail", _)) => fail_value,
        Some((other, span)) => {
            ctx.error(
                span.start,
                &table.child_path("action"),
                format!("unknown action `{other}`"),
                Some(unknown_help.into()),
            );
            fail_value
        }
        None if has_login => login_value,
        None => fail_value,
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_KEYS: [&str; 7] = [
    "url", "method", "body", "fields", "headers", "basic", "timeout",
];

fn login(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &Table<'_, '_>,
    insecure_ok: bool,
) -> Option<TokenRequest> {
    let mut allowed = REQUEST_KEYS.to_vec();
    allowed.push("rotate"); // reported below with a better message
    table.check_keys(ctx, &allowed, "a [login] table");
    if let Some(v) = table.get("rotate") {
        ctx.error(
            v.span().start,
            &table.child_path("rotate"),
            "`rotate` belongs in the [refresh] table",
            Some(format!("move it to [providers.{}.refresh]", scope.provider)),
        );
    }
    let url = get_url(ctx, table, "url", insecure_ok);
    let url = require(
        ctx,
        table,
        "url",
        url,
        "set url = \"https://.../token\" (the token endpoint)",
    );
    request_keys(ctx, scope, table, TokenVars::None, url, None)
}

/// The keys a login and a refresh request share: method, body, fields,
/// headers, basic and timeout. A refresh inherits from `inherit` (the login)
/// each of method, body, headers, basic and timeout that it leaves out (the
/// url is inherited by the caller; fields never are). A refresh that writes
/// `headers` sends exactly those, and `headers = {}` / `basic = {}` send none.
/// The table of these rules is in docs/providers-toml.md.
fn request_keys(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &Table<'_, '_>,
    tokens: TokenVars,
    url: Option<Url>,
    inherit: Option<&TokenRequest>,
) -> Option<TokenRequest> {
    let method = get_method(
        ctx,
        table,
        "method",
        inherit.map_or(Method::POST, |l| l.method.clone()),
    );
    let body = body_format(ctx, table).unwrap_or(inherit.map_or(BodyFormat::Form, |l| l.body));
    let errors_before = ctx.errors();
    let fields: Vec<_> = template_map(ctx, scope, table, "fields", tokens)
        .into_iter()
        .map(|(n, _, t)| (n, t))
        .collect();
    // Client authentication is the client's, not the grant's: a refresh
    // authenticates as the login did unless it says otherwise. But never by
    // inheritance to another origin, where the client secret was never sent.
    let inherit_auth = match (inherit, url.as_ref()) {
        (Some(login), Some(url)) if url.origin() != login.url.origin() => {
            let left_out: Vec<&str> = [
                ("basic", login.basic.is_some()),
                ("headers", !login.headers.is_empty()),
            ]
            .into_iter()
            .filter(|(key, set)| *set && table.get(key).is_none())
            .map(|(key, _)| key)
            .collect();
            if !left_out.is_empty() {
                let keys = left_out.join("` and `");
                ctx.error(
                    table.at,
                    &table.path,
                    format!(
                        "the refresh url is on another origin ({}) than the login url ({}), so the login's `{keys}` (client authentication) is not inherited",
                        url.origin().ascii_serialization(),
                        login.url.origin().ascii_serialization()
                    ),
                    Some(format!(
                        "say what the refresh endpoint gets: repeat `{keys}` in [{}] if it needs the client credentials, or write {} to send none",
                        table.path,
                        left_out
                            .iter()
                            .map(|k| format!("{k} = {{}}"))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    )),
                );
            }
            None
        }
        (login, _) => login,
    };
    let headers = match (table.get("headers"), inherit_auth) {
        (None, Some(login)) => login.headers.clone(),
        _ => headers(ctx, scope, table, tokens),
    };
    let basic = match (table.get("basic"), inherit_auth) {
        (None, Some(login)) => login.basic.clone(),
        (Some(v), _)
            if tokens == TokenVars::Refresh
                && matches!(v.get_ref(), DeValue::Table(t) if t.is_empty()) =>
        {
            None
        }
        _ => basic(ctx, scope, table, tokens),
    };
    // Whether the refresh token is sent can only be told when what might
    // send it was read without errors.
    if tokens == TokenVars::Refresh && ctx.errors() == errors_before {
        check_sends_refresh_token(ctx, table, &fields, &headers, basic.as_ref());
    }
    let timeout = get_duration(ctx, table, "timeout")
        .unwrap_or(inherit.map_or(DEFAULT_TIMEOUT, |l| l.timeout));
    Some(TokenRequest {
        url: url?,
        method,
        body,
        fields,
        headers,
        basic,
        timeout,
    })
}

/// A refresh request must carry `{{ token.refresh }}` somewhere.
fn check_sends_refresh_token(
    ctx: &mut Ctx<'_>,
    table: &Table<'_, '_>,
    fields: &[(String, Template)],
    headers: &[(HeaderName, Template)],
    basic: Option<&BasicAuth>,
) {
    if table.get("fields").is_none() {
        ctx.error(table.at, &table.path, "missing key `fields`", Some("the refresh request needs its fields, e.g. grant_type = \"refresh_token\" and refresh_token = \"{{ token.refresh }}\"".into()));
        return;
    }
    let uses_refresh = fields
        .iter()
        .map(|(_, t)| t)
        .chain(headers.iter().map(|(_, t)| t))
        .chain(basic.into_iter().flat_map(|b| [&b.username, &b.password]))
        .any(|t| t.vars().any(|v| *v == Var::TokenRefresh));
    if !uses_refresh {
        ctx.error(
            table.at,
            &table.child_path("fields"),
            "the refresh request never sends `{{ token.refresh }}`",
            Some(
                "add the field that carries it, e.g. refresh_token = \"{{ token.refresh }}\""
                    .into(),
            ),
        );
    }
}

fn refresh(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &Table<'_, '_>,
    (has_login, login): (bool, Option<&TokenRequest>),
    insecure_ok: bool,
) -> Option<Refresh> {
    let mut allowed = REQUEST_KEYS.to_vec();
    allowed.extend(["rotate", "on_error"]);
    table.check_keys(ctx, &allowed, "a [refresh] table");
    let url = match get_url(ctx, table, "url", insecure_ok) {
        Some(u) => Some(u),
        None if table.get("url").is_some() => None,
        None => {
            let inherited = login.map(|l| l.url.clone());
            if !has_login {
                ctx.error(
                    table.at,
                    &table.path,
                    "missing key `url`",
                    Some("a provider without [login] must give the refresh endpoint's url".into()),
                );
            }
            inherited
        }
    };
    let request = request_keys(ctx, scope, table, TokenVars::Refresh, url, login);
    let rotate = get_bool(ctx, table, "rotate").unwrap_or(false);
    let on_error = match child_table(ctx, table, "on_error") {
        Some(t) => on_error(ctx, &t, has_login),
        None => RefreshOnError {
            status: vec![400, 401],
            error_pointer: None,
            error_values: Vec::new(),
            action: if has_login {
                RefreshErrorAction::Login
            } else {
                RefreshErrorAction::Fail
            },
        },
    };
    Some(Refresh {
        request: request?,
        rotate,
        on_error,
    })
}

fn on_error(ctx: &mut Ctx<'_>, table: &Table<'_, '_>, has_login: bool) -> RefreshOnError {
    table.check_keys(
        ctx,
        &["status", "error_pointer", "error_values", "action"],
        "refresh.on_error",
    );
    let status = get_statuses(ctx, table, "status").unwrap_or_else(|| vec![400, 401]);
    let error_pointer = get_pointer(ctx, table, "error_pointer");
    let error_values: Vec<String> = get_string_list(ctx, table, "error_values")
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    if !error_values.is_empty() && error_pointer.is_none() && table.get("error_pointer").is_none() {
        ctx.error(
            table.at,
            &table.child_path("error_values"),
            "`error_values` without `error_pointer`",
            Some("say where the error code is, e.g. error_pointer = \"/error\"".into()),
        );
    }
    let action = get_action(
        ctx,
        table,
        has_login,
        ("login", RefreshErrorAction::Login),
        RefreshErrorAction::Fail,
        "action \"login\" but the provider has no [login] table",
        "add a [login] table, or use action = \"fail\"",
        "use \"login\" (log in again) or \"fail\"",
    );
    RefreshOnError {
        status,
        error_pointer,
        error_values,
        action,
    }
}

fn response(ctx: &mut Ctx<'_>, table: &Table<'_, '_>, provider: &str) -> Response {
    table.check_keys(
        ctx,
        &[
            "access_token",
            "refresh_token",
            "expires_in",
            "expires_at",
            "expires_at_format",
            "token_type",
            "rotate",
        ],
        "[response]",
    );
    if let Some(v) = table.get("rotate") {
        ctx.error(
            v.span().start,
            &table.child_path("rotate"),
            "`rotate` belongs in the [refresh] table",
            Some(format!("move it to [providers.{provider}.refresh]")),
        );
    }
    let mut r = Response::default();
    if let Some(p) = get_pointer(ctx, table, "access_token") {
        r.access_token = p;
    }
    r.refresh_token = get_pointer(ctx, table, "refresh_token");
    r.expires_in = get_pointer(ctx, table, "expires_in");
    r.expires_at = get_pointer(ctx, table, "expires_at");
    r.token_type = get_pointer(ctx, table, "token_type");
    if let Some((fmt, span)) = get_str(ctx, table, "expires_at_format") {
        r.expires_at_format = match fmt {
            "rfc3339" => ExpiresAtFormat::Rfc3339,
            "unix" | "unix_seconds" => ExpiresAtFormat::UnixSeconds,
            "unix_millis" => ExpiresAtFormat::UnixMillis,
            other => {
                ctx.error(
                    span.start,
                    &table.child_path("expires_at_format"),
                    format!("unknown format `{other}`"),
                    Some("use \"rfc3339\", \"unix_seconds\" or \"unix_millis\"".into()),
                );
                r.expires_at_format
            }
        };
        if r.expires_at.is_none() && table.get("expires_at").is_none() {
            ctx.error(
                span.start,
                &table.child_path("expires_at_format"),
                "`expires_at_format` without `expires_at`",
                Some("add expires_at = \"/pointer\" or remove the format".into()),
            );
        }
    }
    r
}

fn expiry(ctx: &mut Ctx<'_>, table: &Table<'_, '_>) -> Expiry {
    table.check_keys(ctx, &["ttl", "skew", "jwt_exp"], "[expiry]");
    let ttl = get_duration(ctx, table, "ttl");
    let jwt_exp = get_bool(ctx, table, "jwt_exp").unwrap_or(false);
    let skew = match table.get("skew").map(|v| (v, v.get_ref())) {
        Some((v, DeValue::String(s))) if s.trim_end().ends_with('%') => {
            let number = s.trim_end().trim_end_matches('%').trim();
            match number.parse::<u8>() {
                Ok(p) if (1..=90).contains(&p) => Skew::Percent(p),
                _ => {
                    ctx.error(
                        v.span().start,
                        &table.child_path("skew"),
                        format!("`{s}` is not a usable percentage"),
                        Some(
                            "use a whole percentage from 1% to 90% of the lifetime, e.g. \"10%\""
                                .into(),
                        ),
                    );
                    Skew::DEFAULT
                }
            }
        }
        Some(_) => get_duration(ctx, table, "skew").map_or(Skew::DEFAULT, Skew::Fixed),
        None => Skew::DEFAULT,
    };
    Expiry { ttl, skew, jwt_exp }
}

fn inject(ctx: &mut Ctx<'_>, scope: &Scope<'_>, table: &Table<'_, '_>) -> Option<Inject> {
    table.check_keys(ctx, &["header", "value", "basic", "query"], "[inject]");
    let tokens = if scope.fetches {
        TokenVars::Access
    } else {
        TokenVars::None
    };
    let modes: Vec<&str> = ["header", "basic", "query"]
        .into_iter()
        .filter(|k| table.get(k).is_some())
        .collect();
    let help = "choose one of: header = \"Authorization\" with value = \"Bearer {{ token.access }}\"; basic = { username = \"...\", password = \"...\" }; query = { name = \"...\", value = \"...\" }";
    match modes.as_slice() {
        [] => {
            if let Some(v) = table.get("value") {
                ctx.error(
                    v.span().start,
                    &table.child_path("value"),
                    "`value` without `header`",
                    Some("name the header it goes in, e.g. header = \"Authorization\"".into()),
                );
            } else {
                ctx.error(
                    table.at,
                    &table.path,
                    "no injection mode: the credential would never be sent",
                    Some(help.into()),
                );
            }
            None
        }
        [_, _, ..] => {
            ctx.error(
                table.at,
                &table.path,
                format!(
                    "{} injection modes ({}): exactly one is allowed",
                    modes.len(),
                    modes.join(" and ")
                ),
                Some(help.into()),
            );
            None
        }
        ["header"] => {
            let (name, span) = get_str(ctx, table, "header")?;
            let name = header_name(ctx, name, span.start, &table.child_path("header"));
            let value = get_template(ctx, scope, table, "value", tokens);
            let value = require(
                ctx,
                table,
                "value",
                value,
                "header needs value = \"Bearer {{ token.access }}\" (or whatever the provider expects)",
            );
            Some(Inject::Header {
                name: name?,
                value: value?,
            })
        }
        ["basic"] => {
            let b = basic(ctx, scope, table, tokens)?;
            if let Some(v) = table.get("value") {
                ctx.error(
                    v.span().start,
                    &table.child_path("value"),
                    "`value` only goes with `header`",
                    Some("remove it: basic has its own username and password".into()),
                );
            }
            Some(Inject::Basic(b))
        }
        _ => {
            let q = child_table(ctx, table, "query")?;
            q.check_keys(ctx, &["name", "value"], "inject.query");
            let name = get_str(ctx, &q, "name").map(|(s, _)| s.to_owned());
            let name = require(
                ctx,
                &q,
                "name",
                name,
                "query needs name = \"...\" and value = \"...\"",
            );
            let value = get_template(ctx, scope, &q, "value", tokens);
            let value = require(
                ctx,
                &q,
                "value",
                value,
                "query needs name = \"...\" and value = \"...\"",
            );
            Some(Inject::Query {
                name: name?,
                value: value?,
            })
        }
    }
}

/// A provider's inputs, and what could not be read of them: a template that
/// names an input whose declaration already has an error is not reported
/// again as naming an undeclared input.
struct Inputs {
    list: Vec<Input>,
    /// Names declared with an unreadable spec (`user = "ENV"`).
    unreadable: Vec<String>,
    /// `inputs` is there but not a table: any name may have been meant.
    all_unreadable: bool,
}

impl Inputs {
    fn declares(&self, name: &str) -> bool {
        self.all_unreadable
            || self.list.iter().any(|i| i.name == name)
            || self.unreadable.iter().any(|n| n == name)
    }
}

fn inputs(ctx: &mut Ctx<'_>, provider: &Table<'_, '_>) -> Inputs {
    let mut inputs = Inputs {
        list: Vec::new(),
        unreadable: Vec::new(),
        all_unreadable: provider.get("inputs").is_some(),
    };
    let Some(table) = child_table(ctx, provider, "inputs") else {
        return inputs;
    };
    inputs.all_unreadable = false;
    let out = &mut inputs.list;
    for (k, v) in table.entries {
        let name: &str = k.get_ref();
        let path = table.child_path(name);
        if !is_identifier(name) {
            ctx.error(
                k.span().start,
                &path,
                format!("`{name}` is not a valid input name"),
                Some("use letters, digits, `_` or `-`".into()),
            );
            continue;
        }
        let Some(spec) = expect_table(ctx, v, path.clone()) else {
            inputs.unreadable.push(name.to_owned());
            continue;
        };
        spec.check_keys(ctx, &["env", "secret", "default"], "an input");
        let env = get_str(ctx, &spec, "env").and_then(|(e, span)| {
            let valid = !e.is_empty()
                && !e.starts_with(|c: char| c.is_ascii_digit())
                && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                ctx.error(
                    span.start,
                    &spec.child_path("env"),
                    format!("`{e}` is not an environment variable name"),
                    Some("use letters, digits and `_`, e.g. \"REOBTIMAAL_USERNAME\"".into()),
                );
            }
            valid.then(|| e.to_owned())
        });
        let secret = get_bool(ctx, &spec, "secret").unwrap_or(false);
        let default = get_str(ctx, &spec, "default").map(|(d, _)| d.to_owned());
        if secret && let Some(v) = spec.get("default") {
            ctx.error(
                v.span().start,
                &spec.child_path("default"),
                "a secret input cannot have a default in the file",
                Some(
                    "read it from the environment with env = \"...\" or supply it per connection"
                        .into(),
                ),
            );
        }
        out.push(Input {
            name: name.to_owned(),
            env,
            secret,
            default: default.filter(|_| !secret),
        });
    }
    inputs
}

fn api_prefixes(ctx: &mut Ctx<'_>, table: &Table<'_, '_>, insecure_ok: bool) -> Vec<Url> {
    let entries = get_string_list(ctx, table, "api");
    if table.get("api").is_none() {
        ctx.error(table.at, &table.path, "missing key `api`", Some("list the URL prefixes the credential may be sent to, e.g. api = [\"https://api.example.com/\"]".into()));
    } else if entries.is_empty()
        && matches!(table.get("api").map(|v| v.get_ref()), Some(DeValue::Array(a)) if a.is_empty())
    {
        ctx.error(
            table.at,
            &table.child_path("api"),
            "`api` is empty: the credential could never be used",
            Some("list at least one URL prefix".into()),
        );
    }
    let path = table.child_path("api");
    let mut out = Vec::new();
    for (text, span) in entries {
        let Some(url) = check_url(ctx, &text, &span, &path, insecure_ok) else {
            continue;
        };
        if url.query().is_some() || url.fragment().is_some() {
            ctx.error(
                span.start,
                &path,
                "an api prefix cannot have a query or fragment",
                Some("give scheme, host, optional port and path only".into()),
            );
            continue;
        }
        out.push(url);
    }
    out
}

fn test_request(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &Table<'_, '_>,
    api: Option<&[Url]>,
    insecure_ok: bool,
) -> Option<TestRequest> {
    table.check_keys(
        ctx,
        &["method", "url", "headers", "body", "expect_status"],
        "[test]",
    );
    let method = get_method(ctx, table, "method", Method::GET);
    let url = get_url(ctx, table, "url", insecure_ok);
    let url = require(
        ctx,
        table,
        "url",
        url,
        "set url = \"...\" to an API URL that proves the credentials work",
    )?;
    // `api` is None when a prefix was rejected: the test URL may well be
    // under the one that was meant, so only the prefix's error is reported.
    if let Some(api) = api
        && !api.is_empty()
        && !api
            .iter()
            .any(|prefix| crate::route::prefix_matches(prefix, &url))
    {
        let span = table.get("url").map_or(table.at, |v| v.span().start);
        ctx.error(
            span,
            &table.child_path("url"),
            "the test URL is outside every `api` prefix, so no credential would be attached",
            Some("use a URL under one of the provider's api prefixes".into()),
        );
    }
    let headers = headers(ctx, scope, table, TokenVars::None);
    let body = get_str(ctx, table, "body").map(|(b, _)| b.to_owned());
    let expect_status = get_statuses(ctx, table, "expect_status").unwrap_or_else(|| vec![200]);
    Some(TestRequest {
        method,
        url,
        headers,
        body,
        expect_status,
    })
}

const PROVIDER_KEYS: [&str; 11] = [
    "name",
    "api",
    "allow_insecure_http",
    "inputs",
    "login",
    "refresh",
    "response",
    "expiry",
    "inject",
    "on_unauthorized",
    "test",
];

/// Whether `key` is written in the provider's sub-table `sub`, counting a
/// `sub` that is not a table at all (it has its own error, which must not be
/// followed by one saying that `key` is missing).
fn written(provider: &Table<'_, '_>, sub: &str, key: &str) -> bool {
    match provider.get(sub).map(|v| v.get_ref()) {
        Some(DeValue::Table(t)) => t.get(key).is_some(),
        Some(_) => true,
        None => false,
    }
}

fn provider(ctx: &mut Ctx<'_>, id: &str, table: &Table<'_, '_>) -> Option<Provider> {
    let mut allowed = PROVIDER_KEYS.to_vec();
    allowed.push("rotate");
    table.check_keys(ctx, &allowed, "a provider");
    let allow_insecure_http = get_bool(ctx, table, "allow_insecure_http").unwrap_or(false);
    let name = get_str(ctx, table, "name").map_or_else(|| id.to_owned(), |(n, _)| n.to_owned());
    let errors_before_api = ctx.errors();
    let api = api_prefixes(ctx, table, allow_insecure_http);
    let api_complete = ctx.errors() == errors_before_api;
    let inputs = inputs(ctx, table);
    // What depends on the login (the refresh's url and on_error action, the
    // token placeholders) asks whether a login is written, not whether it
    // loaded: a broken [login] has its own errors and causes no others.
    let has_login = table.get("login").is_some();
    let login_table = child_table(ctx, table, "login");
    let scope = Scope {
        provider: id,
        inputs: &inputs,
        fetches: has_login || table.get("refresh").is_some(),
    };
    let login = login_table
        .as_ref()
        .and_then(|t| login(ctx, &scope, t, allow_insecure_http));
    let refresh_table = child_table(ctx, table, "refresh");
    if let Some(v) = table.get("rotate") {
        let help = if refresh_table.is_some() {
            format!("move it into [providers.{id}.refresh]")
        } else {
            format!(
                "rotation is a property of refresh tokens: add a [providers.{id}.refresh] table with the refresh request's fields and rotate = true there"
            )
        };
        ctx.error(
            v.span().start,
            &table.child_path("rotate"),
            "`rotate = true` but there is no [refresh] table for it to apply to",
            Some(help),
        );
    }
    let refresh = refresh_table.as_ref().and_then(|t| {
        refresh(
            ctx,
            &scope,
            t,
            (has_login, login.as_ref()),
            allow_insecure_http,
        )
    });
    let response = match child_table(ctx, table, "response") {
        Some(t) => response(ctx, &t, id),
        None => Response::default(),
    };
    if let Some(t) = &refresh_table
        && !written(table, "response", "refresh_token")
    {
        ctx.error(t.at, &t.path, "a [refresh] table but no `response.refresh_token`", Some(format!("say where the reply carries the refresh token: [providers.{id}.response] refresh_token = \"/refresh_token\"")));
    }
    let expiry = match child_table(ctx, table, "expiry") {
        Some(t) => expiry(ctx, &t),
        None => Expiry::default(),
    };
    // Only when no expiry key is written at all: a malformed one has its own error.
    let expiry_written = ["ttl", "jwt_exp"]
        .iter()
        .any(|k| written(table, "expiry", k))
        || ["expires_in", "expires_at"]
            .iter()
            .any(|k| written(table, "response", k));
    if scope.fetches
        && !expiry_written
        && expiry.ttl.is_none()
        && !expiry.jwt_exp
        && response.expires_in.is_none()
        && response.expires_at.is_none()
    {
        ctx.error(
            login_table
                .as_ref()
                .or(refresh_table.as_ref())
                .map_or(table.at, |t| t.at),
            &table.path,
            "no way to know when the token expires",
            Some(format!("set [providers.{id}.expiry] ttl = \"60m\" (the lifetime the provider documents), or point response.expires_in / response.expires_at at the reply's expiry")),
        );
    }
    let inject = match child_table(ctx, table, "inject") {
        Some(t) => {
            let inject = inject(ctx, &scope, &t);
            if let Some(i) = &inject
                && scope.fetches
            {
                let templates: Vec<&Template> = match i {
                    Inject::Header { value, .. } | Inject::Query { value, .. } => vec![value],
                    Inject::Basic(b) => vec![&b.username, &b.password],
                };
                if !templates
                    .iter()
                    .any(|t| t.vars().any(|v| *v == Var::TokenAccess))
                {
                    ctx.error(t.at, &t.path, "the provider logs in but [inject] never uses `{{ token.access }}`, so the token would not be sent", Some("e.g. value = \"Bearer {{ token.access }}\"".into()));
                }
            }
            inject
        }
        None => {
            ctx.error(table.at, &table.path, "missing [inject] table: the credential would never be sent", Some(format!("add [providers.{id}.inject] with header = \"Authorization\" and value = \"Bearer {{{{ token.access }}}}\"")));
            None
        }
    };
    let on_unauthorized = match child_table(ctx, table, "on_unauthorized") {
        Some(t) => {
            t.check_keys(ctx, &["status", "action"], "[on_unauthorized]");
            let status = get_statuses(ctx, &t, "status").unwrap_or_else(|| vec![401]);
            let action = get_action(
                ctx,
                &t,
                scope.fetches,
                ("renew", UnauthorizedAction::Renew),
                UnauthorizedAction::Fail,
                "action \"renew\" but the provider has static credentials",
                "there is nothing to renew: use action = \"fail\"",
                "use \"renew\" (drop the token, renew, retry once) or \"fail\"",
            );
            OnUnauthorized { status, action }
        }
        None => OnUnauthorized {
            status: vec![401],
            action: if scope.fetches {
                UnauthorizedAction::Renew
            } else {
                UnauthorizedAction::Fail
            },
        },
    };
    let test = child_table(ctx, table, "test").and_then(|t| {
        test_request(
            ctx,
            &scope,
            &t,
            api_complete.then_some(&api[..]),
            allow_insecure_http,
        )
    });
    Some(Provider {
        id: id.to_owned(),
        name,
        api,
        allow_insecure_http,
        inputs: inputs.list,
        login,
        refresh,
        response,
        expiry,
        inject: inject?,
        on_unauthorized,
        test,
    })
}

/// Parses and validates a whole description. `file` names it in messages.
pub(crate) fn parse(file: &str, src: &str) -> Result<Providers, ConfigErrors> {
    let mut ctx = Ctx::new(file, src);
    let (root, parse_errors) = DeTable::parse_recoverable(src);
    if !parse_errors.is_empty() {
        // The parser's recovery often reports follow-on errors on the line of
        // the real one: keep the first error of each line.
        let mut lines_seen = std::collections::HashSet::new();
        for e in parse_errors {
            let at = e.span().map_or(0, |s| s.start);
            if !lines_seen.insert(ctx.line(at)) {
                continue;
            }
            ctx.error(
                at,
                "",
                format!("TOML syntax error: {}", e.message().trim_end()),
                Some(
                    "fix the TOML syntax first; the provider checks run once the file parses"
                        .into(),
                ),
            );
        }
        return Err(finish(ctx));
    }
    let root = Table {
        entries: root.get_ref(),
        at: 0,
        path: String::new(),
    };
    root.check_keys(&mut ctx, &["providers"], "the top level");
    let mut providers = Vec::new();
    match child_table(&mut ctx, &root, "providers") {
        None if root.get("providers").is_none() && ctx.errors() == 0 => {
            ctx.error(0, "", "no providers: the file has no [providers.ID] table", Some("start with [providers.myapi] and its api, login, response, expiry and inject keys".into()));
        }
        None => {}
        Some(table) => {
            let mut seen: BTreeMap<String, String> = BTreeMap::new();
            for (k, v) in table.entries {
                let id: &str = k.get_ref();
                let path = table.child_path(id);
                if !is_identifier(id) {
                    ctx.error(
                        k.span().start,
                        &path,
                        format!("`{id}` is not a valid provider id"),
                        Some("use letters, digits, `_` or `-`, e.g. [providers.my-api]".into()),
                    );
                    continue;
                }
                if let Some(first) = seen.insert(id.to_ascii_lowercase(), id.to_owned()) {
                    ctx.error(k.span().start, &path, format!("duplicate provider id `{id}` (already defined as `{first}`; ids are compared without case)"), Some("give each provider its own id".into()));
                    continue;
                }
                if let Some(t) = expect_table(&mut ctx, v, path)
                    && let Some(p) = provider(&mut ctx, id, &t)
                {
                    providers.push(p);
                }
            }
        }
    }
    if ctx.errors() == 0 {
        Ok(Providers { providers })
    } else {
        Err(finish(ctx))
    }
}

/// Sorts the problems into file order, drops repeats, keeps the first
/// [`MAX_REPORTED`] and gives those their line and column.
fn finish(ctx: Ctx<'_>) -> ConfigErrors {
    let Ctx {
        file,
        src,
        line_starts,
        mut pending,
    } = ctx;
    // Stable: problems at one position keep the order they were found in.
    pending.sort_by_key(|p| p.at);
    pending.dedup();
    let omitted = pending.len().saturating_sub(MAX_REPORTED);
    pending.truncate(MAX_REPORTED);
    let mut cursor = Cursor::new(src, &line_starts);
    let diagnostics = pending
        .into_iter()
        .map(|p| {
            let (line, column) = cursor.position(p.at);
            Diagnostic {
                file: file.to_owned(),
                line,
                column,
                path: p.path,
                message: p.message,
                help: p.help.render(),
            }
        })
        .collect();
    ConfigErrors {
        diagnostics,
        omitted,
    }
}
