//! 2BA's authorization-code grant: `GET /OAuth/Authorize` shows a consent
//! page; `POST /OAuth/Authorize` (same query, form `username`, `password`,
//! `consent=allow|deny`) answers 302 to the `redirect_uri` with `code` and
//! `state` (or `error=access_denied`). The token endpoint's
//! `grant_type=authorization_code` takes the code once
//! ([`State::use_code`]): `redirect_uri` must be the one of the
//! authorization request, and a PKCE `code_challenge` (S256 or plain) must
//! be answered by its `code_verifier`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Method, Response, StatusCode};
use sha2::Digest as _;

use crate::body::EmuBody;
use crate::handler::parse_form;
use crate::state::{State, lock, random_token};

type Resp = Response<EmuBody>;

/// How long a code can be exchanged (2BA does not document it; RFC 6749
/// §4.1.2 recommends at most 10 minutes).
const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// One issued code.
struct CodeEntry {
    user: String,
    client_id: String,
    redirect_uri: String,
    /// `(challenge, method)` of the authorization request.
    challenge: Option<(String, String)>,
    expires_at: Instant,
    used: bool,
}

/// The codes issued, by code.
#[derive(Default)]
pub(crate) struct Codes(Mutex<HashMap<String, CodeEntry>>);

/// Why a code was refused at the token endpoint (all `invalid_grant`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CodeError {
    Unknown,
    Reused,
    Expired,
    OtherClient,
    RedirectMismatch,
    VerifierMissing,
    VerifierWrong,
}

impl State {
    /// Uses up a code: the user it was issued to, or why not. A code is
    /// spent by its first use, successful or not.
    pub(crate) fn use_code(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> Result<String, CodeError> {
        let mut map = lock(&self.codes.0);
        let entry = map.get_mut(code).ok_or(CodeError::Unknown)?;
        if std::mem::replace(&mut entry.used, true) {
            return Err(CodeError::Reused);
        }
        if Instant::now() >= entry.expires_at {
            return Err(CodeError::Expired);
        }
        if entry.client_id != client_id {
            return Err(CodeError::OtherClient);
        }
        if redirect_uri != Some(entry.redirect_uri.as_str()) {
            return Err(CodeError::RedirectMismatch);
        }
        if let Some((challenge, method)) = &entry.challenge {
            let verifier = verifier.ok_or(CodeError::VerifierMissing)?;
            let answer = match method.as_str() {
                "S256" => URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes())),
                _ => verifier.to_owned(),
            };
            if &answer != challenge {
                return Err(CodeError::VerifierWrong);
            }
        }
        Ok(entry.user.clone())
    }

    fn issue_code(&self, entry: CodeEntry) -> String {
        let code = random_token(32);
        let mut map = lock(&self.codes.0);
        let now = Instant::now();
        map.retain(|_, e| e.expires_at > now);
        map.insert(code.clone(), entry);
        code
    }
}

/// The authorization request's parameters, checked.
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    challenge: Option<(String, String)>,
    query: String,
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    parse_form(query.as_bytes())
}

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn check_request(state: &State, query: &str) -> Result<AuthRequest, String> {
    let q = query_pairs(query);
    if get(&q, "response_type") != Some("code") {
        return Err("response_type must be code".into());
    }
    let client_id = get(&q, "client_id").unwrap_or_default();
    if state.check_twoba_client(client_id, "").is_none() {
        return Err("unknown client_id".into());
    }
    let redirect_uri = get(&q, "redirect_uri").unwrap_or_default();
    if !(redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://"))
        || redirect_uri.contains('#')
    {
        return Err("redirect_uri must be an absolute http(s) URI without a fragment".into());
    }
    let challenge = match (get(&q, "code_challenge"), get(&q, "code_challenge_method")) {
        (None, _) => None,
        (Some(c), m @ (None | Some("plain" | "S256"))) => {
            Some((c.to_owned(), m.unwrap_or("plain").to_owned()))
        }
        (Some(_), Some(_)) => return Err("code_challenge_method must be S256 or plain".into()),
    };
    Ok(AuthRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        state: get(&q, "state").map(str::to_owned),
        challenge,
        query: query.to_owned(),
    })
}

/// `GET` (the consent page) and `POST` (the person's answer) of
/// `/OAuth/Authorize`.
pub(crate) fn authorize(state: &State, method: &Method, query: &str, body: &[u8]) -> Resp {
    let req = match check_request(state, query) {
        Ok(r) => r,
        Err(why) => {
            return page(
                StatusCode::BAD_REQUEST,
                &format!("<p>Invalid request: {}</p>", escape(&why)),
            );
        }
    };
    match *method {
        Method::GET => consent_page(&req, None),
        Method::POST => {
            let form = parse_form(body);
            if get(&form, "consent") == Some("deny") {
                return redirect(&req, &[("error", "access_denied")]);
            }
            let user = get(&form, "username").unwrap_or_default();
            let password = get(&form, "password").unwrap_or_default();
            if get(&form, "consent") != Some("allow") || !state.check_twoba_user(user, password) {
                return consent_page(&req, Some("The user name or password is incorrect."));
            }
            let code = state.issue_code(CodeEntry {
                user: user.to_owned(),
                client_id: req.client_id.clone(),
                redirect_uri: req.redirect_uri.clone(),
                challenge: req.challenge.clone(),
                expires_at: Instant::now() + CODE_LIFETIME,
                used: false,
            });
            redirect(&req, &[("code", &code)])
        }
        _ => page(StatusCode::METHOD_NOT_ALLOWED, "<p>GET or POST only.</p>"),
    }
}

fn consent_page(req: &AuthRequest, error: Option<&str>) -> Resp {
    let error = error.map_or_else(String::new, |e| {
        format!("<p class=\"error\">{}</p>", escape(e))
    });
    page(
        StatusCode::OK,
        &format!(
            r#"<h1>2BA</h1><p>{client} asks for access to your 2BA account.</p>{error}
<form method="post" action="Authorize?{query}">
<label>User name <input name="username"></label>
<label>Password <input name="password" type="password"></label>
<button name="consent" value="allow">Allow</button>
<button name="consent" value="deny">Deny</button>
</form>"#,
            client = escape(&req.client_id),
            query = escape(&req.query),
        ),
    )
}

fn page(status: StatusCode, body: &str) -> Resp {
    let mut r = Response::new(EmuBody::full(format!(
        "<!doctype html><html><head><title>2BA</title></head><body>{body}</body></html>"
    )));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// 302 to the redirect URI with `params` and the request's state.
fn redirect(req: &AuthRequest, params: &[(&str, &str)]) -> Resp {
    let mut location = req.redirect_uri.clone();
    let mut sep = if location.contains('?') { '&' } else { '?' };
    let state = req.state.as_deref().map(|s| ("state", s));
    for (k, v) in params.iter().copied().chain(state) {
        location.push(sep);
        location.push_str(k);
        location.push('=');
        location.push_str(&encode(v));
        sep = '&';
    }
    let mut r = Response::new(EmuBody::full(""));
    *r.status_mut() = StatusCode::FOUND;
    match HeaderValue::try_from(location) {
        Ok(v) => {
            r.headers_mut().insert(LOCATION, v);
            r
        }
        Err(_) => page(StatusCode::BAD_REQUEST, "<p>Invalid redirect_uri.</p>"),
    }
}

/// Percent-encodes a query value (unreserved characters kept).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::percent_decode;

    #[test]
    fn encoding_round_trips_through_the_form_parser() {
        let v = "a b&c=d/é";
        assert_eq!(percent_decode(encode(v).as_bytes()), v);
    }
}
