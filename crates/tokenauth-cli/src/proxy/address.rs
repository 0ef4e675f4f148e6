//! Where a proxy request goes: `/{provider}/{rest}?{query}` is the
//! provider's API base joined with `rest` and the query, and nothing else.
//!
//! The proxy is never an open relay: `rest` may not climb out of the base
//! (`.`/`..` segments, also percent-encoded), smuggle a separator (`%2F`,
//! `%5C`, `\`), a NUL (`%00`) or an empty segment (`//`), and the URL that
//! results must be read back exactly as it was joined (no normalisation by
//! the URL parser) before the engine routes it to that very provider.

use url::Url;

/// `/{provider}/{rest}`: the provider id and the rest (without its leading
/// `/`; empty for `/{provider}` and `/{provider}/`).
pub(crate) fn split(path: &str) -> Option<(&str, &str)> {
    let path = path.strip_prefix('/')?;
    let (provider, rest) = path.split_once('/').unwrap_or((path, ""));
    (!provider.is_empty()).then_some((provider, rest))
}

/// `base` joined with `rest` and `query`, or why that is refused.
pub(crate) fn join(base: &Url, rest: &str, query: Option<&str>) -> Result<Url, String> {
    check_rest(rest)?;
    let query = query.filter(|q| !q.is_empty());
    let mut joined = String::with_capacity(
        base.as_str().len() + 1 + rest.len() + query.map_or(0, |q| 1 + q.len()),
    );
    joined.push_str(base.scheme());
    joined.push_str("://");
    joined.push_str(&base[url::Position::BeforeHost..url::Position::AfterPort]);
    let base_path = base.path();
    let path_start = joined.len();
    joined.push_str(base_path);
    if !base_path.ends_with('/') && !rest.is_empty() {
        joined.push('/');
    }
    joined.push_str(rest);
    let path_end = joined.len();
    if let Some(query) = query {
        joined.push('?');
        joined.push_str(query);
    }
    let url = Url::parse(&joined).map_err(|e| format!("the URL it makes is not valid ({e})"))?;
    // The parser resolves dot segments and re-encodes some characters: a
    // path that changed could lie elsewhere than it reads.
    if url.path() != &joined[path_start..path_end] {
        return Err(format!(
            "the path would be read as `{}`, not as sent",
            url.path()
        ));
    }
    Ok(url)
}

/// Refuses a path that could climb out of the base (whatever the base).
/// One pass over each segment, no allocation unless refused: it runs on
/// every request.
pub(crate) fn check_rest(rest: &str) -> Result<(), String> {
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        check_segment(segment)?;
        // `a//b`; a trailing `/` (the last segment empty) is a path of its
        // own, and so is an empty rest.
        if segment.is_empty() && segments.peek().is_some() {
            return Err("the path holds an empty segment (`//`)".to_owned());
        }
    }
    Ok(())
}

/// One segment: not `.` or `..` (also percent-encoded), no separator in it
/// (`\`, `%2F`, `%5C`), no NUL (`%00`), and no ambiguous escape: a `%` not
/// followed by two hex digits, or an overlong UTF-8 lead byte (`%C0`,
/// `%C1`). Servers read the last two their own way, some as a dot or a
/// slash (IIS's `%u002e`, old decoders' `%c0%ae`), which would climb out of
/// the base where the URL parser sees none; neither is ever needed (a
/// literal `%` is `%25`, and valid UTF-8 has no `C0` or `C1` byte).
fn check_segment(segment: &str) -> Result<(), String> {
    let bytes = segment.as_bytes();
    let (mut dots, mut only_dots) = (0, true);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'.' => dots += 1,
            b'\\' => return Err(separator(segment)),
            b'%' => {
                let escape = match bytes.get(i + 1..i + 3) {
                    Some([high, low]) if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                        (high.to_ascii_lowercase(), low.to_ascii_lowercase())
                    }
                    _ => return Err(ambiguous(segment)),
                };
                match escape {
                    (b'2', b'e') => dots += 1,
                    (b'2', b'f') | (b'5', b'c') => return Err(separator(segment)),
                    (b'0', b'0') => return Err("the path holds an encoded NUL (%00)".to_owned()),
                    (b'c', b'0' | b'1') => return Err(ambiguous(segment)),
                    _ => only_dots = false,
                }
                i += 2;
            }
            _ => only_dots = false,
        }
        i += 1;
    }
    if only_dots && (dots == 1 || dots == 2) {
        return Err(format!(
            "the path holds a dot segment (`{segment}`): send the resolved path instead"
        ));
    }
    Ok(())
}

fn separator(segment: &str) -> String {
    format!("the path segment `{segment}` holds an encoded or backslash separator")
}

fn ambiguous(segment: &str) -> String {
    format!("the path segment `{segment}` holds an invalid or overlong percent-encoding")
}

/// A parameter name as lenient servers read it: ASP.NET ignores case, PHP
/// reads `a.b`, `a b` and `a_b[]` as `a_b`. A caller's `API_KEY` or
/// `api.key` is their credential to such a server.
fn lenient(name: &str) -> String {
    let name = name.split('[').next().unwrap_or(name);
    name.chars()
        .map(|c| match c {
            '.' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// `query` without the parameters in `names` (the provider's query
/// credential: the proxy, not the caller, authenticates). The query is kept
/// byte for byte when it holds none of them.
pub(crate) fn without_params(query: &str, names: &[&str]) -> Option<String> {
    let is_credential = |pair: &str| {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        let name: String = url::form_urlencoded::parse(name.as_bytes())
            .next()
            .map(|(n, _)| n.into_owned())
            .unwrap_or_default();
        names.iter().any(|n| lenient(n) == lenient(&name))
    };
    // `;` separates parameters too, to some servers (Rails, older Python):
    // `a=1;key=x` loses its `key` as `a=1&key=x` does.
    if !query.split(['&', ';']).any(is_credential) {
        return None;
    }
    let kept: Vec<String> = query
        .split('&')
        .filter_map(|pair| {
            let parts: Vec<&str> = pair.split(';').filter(|p| !is_credential(p)).collect();
            (!parts.is_empty()).then(|| parts.join(";"))
        })
        .collect();
    Some(kept.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://api.example.com/api/").unwrap()
    }

    #[test]
    fn splits_provider_and_rest() {
        assert_eq!(split("/reob/v1/items"), Some(("reob", "v1/items")));
        assert_eq!(split("/reob"), Some(("reob", "")));
        assert_eq!(split("/reob/"), Some(("reob", "")));
        assert_eq!(split("/"), None);
        assert_eq!(split("//x"), None);
    }

    #[test]
    fn joins_inside_the_base() {
        let url = join(&base(), "v1/items", Some("a=1&b=%20")).unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.example.com/api/v1/items?a=1&b=%20"
        );
        assert_eq!(
            join(&base(), "", None).unwrap().as_str(),
            "https://api.example.com/api/"
        );
        assert_eq!(
            join(&base(), "v1/items/", None).unwrap().path(),
            "/api/v1/items/"
        );
        let no_slash = Url::parse("https://api.example.com:8443/v2").unwrap();
        assert_eq!(
            join(&no_slash, "x", None).unwrap().as_str(),
            "https://api.example.com:8443/v2/x"
        );
        assert_eq!(
            join(&base(), "a%20b/%C3%A9", None).unwrap().path(),
            "/api/a%20b/%C3%A9"
        );
        assert!(join(&base(), "%25u002e/%Cf%80/%c2%a0", None).is_ok());
    }

    #[test]
    fn refuses_what_could_leave_the_base() {
        for rest in [
            "..",
            "../admin",
            "v1/../../admin",
            "%2e%2e/admin",
            "%2E%2e/admin",
            ".%2E/admin",
            "./x",
            "%2e/x",
            "v1/%2f/x",
            "v1%2F..%2Fadmin",
            "v1%5c..%5cadmin",
            "v1\\..\\admin",
            "v1//x",
            "/x",
            "x%00",
            "%u002e%u002e/admin",
            "%U002E%U002E/admin",
            "%c0%ae%c0%ae/admin",
            "%C0%AE./admin",
            "%c1%9c",
            "a%zz",
            "a%",
            "a%2",
        ] {
            assert!(join(&base(), rest, None).is_err(), "{rest} was accepted");
        }
    }

    #[test]
    fn strips_credential_parameters_only() {
        assert_eq!(without_params("a=1&b=2", &["key"]), None);
        assert_eq!(
            without_params("a=1&key=x&b=2", &["key"]).as_deref(),
            Some("a=1&b=2")
        );
        assert_eq!(without_params("k%65y=x", &["key"]).as_deref(), Some(""));
        assert_eq!(without_params("key", &["key"]).as_deref(), Some(""));
        assert_eq!(
            without_params("a=1;key=x;b=2&c=3", &["key"]).as_deref(),
            Some("a=1;b=2&c=3")
        );
        assert_eq!(without_params("a=1;b=2", &["key"]), None);
        assert_eq!(
            without_params(
                "API_KEY=1&api.key=2&api+key=3&api_key[]=4&api_keys=5",
                &["api_key"]
            )
            .as_deref(),
            Some("api_keys=5")
        );
    }
}
