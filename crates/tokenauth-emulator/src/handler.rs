//! Request handling: routing, the three providers, the control API.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{
    ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HOST, PRAGMA, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use crate::body::{Abort, EmuBody};
use crate::faults::{FaultUpdate, ProviderKnobs, ReplyFault, duration_to_ms, ms_to_duration};
use crate::host::{Host, Provider, route};
use crate::shapes::{Shape, Shapes, credential_header};
use crate::state::{Issued, RecordedRequest, RefreshError, State, lock};
use crate::stats::Grant;

const TOKEN_BODY_LIMIT: usize = 64 * 1024;
const API_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// The answer to an access token revoked by a newer one
/// ([`crate::Emulator::set_revoke_on_reissue`]): Django REST framework's 403.
const SUPERSEDED: &str = r#"{"detail":"Authentication credentials were not provided."}"#;
const DENIED: &str = r#"{"Message":"Authorization has been denied for this request."}"#;
const INVALID_CREDENTIALS: &str =
    r#"{"error":"invalid_grant","error_description":"The user name or password is incorrect."}"#;

type Resp = Response<EmuBody>;

/// Entry point for every request on both listeners.
pub(crate) async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, Abort> {
    let path = req.uri().path();
    if let Some(op) = path.strip_prefix("/_emulator/") {
        let op = op.to_owned();
        return Ok(control(&state, &op, req).await);
    }
    if let Some(sub) = path
        .strip_prefix(crate::device::DEVICE_PREFIX)
        .filter(|s| s.starts_with('/'))
    {
        let sub = sub.to_owned();
        return Ok(device_request(&state, &sub, req).await);
    }
    if let Some((shape, sub)) = Shapes::route(path) {
        let sub = sub.to_owned();
        return Ok(shape_request(&state, shape, &sub, req).await);
    }
    let host_header = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().host());
    let Some((host, sub)) = route(host_header, path) else {
        return Ok(not_found());
    };
    let sub = sub.to_owned();
    match host {
        Host::Reobtimaal if sub.eq_ignore_ascii_case("/api/Token") => {
            token(&state, host, req).await
        }
        Host::TwobaAuthorize if sub.eq_ignore_ascii_case("/OAuth/Token") => {
            token(&state, host, req).await
        }
        Host::TwobaAuthorize if sub.eq_ignore_ascii_case("/OAuth/Authorize") => {
            let (parts, body) = req.into_parts();
            let Ok(body) = Limited::new(body, TOKEN_BODY_LIMIT).collect().await else {
                return Ok(error_json(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request_too_large",
                ));
            };
            let query = parts.uri.query().unwrap_or_default();
            Ok(crate::authorize::authorize(
                &state,
                &parts.method,
                query,
                &body.to_bytes(),
            ))
        }
        Host::Reobtimaal | Host::Bro
            if starts_with_ci(
                &sub,
                if host == Host::Bro {
                    "/api/v2/"
                } else {
                    "/api/"
                },
            ) =>
        {
            Ok(api(&state, host, &sub, req).await)
        }
        Host::Twoba if starts_with_ci(&sub, "/1/json/") => Ok(api(&state, host, &sub, req).await),
        _ => Ok(not_found()),
    }
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

// ---------------------------------------------------------------- replies

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(EmuBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn json_value<T: Serialize>(status: StatusCode, v: &T) -> Resp {
    match serde_json::to_vec(v) {
        Ok(b) => json_response(status, b),
        Err(_) => json_response(StatusCode::INTERNAL_SERVER_ERROR, "{}"),
    }
}

fn not_found() -> Resp {
    json_response(
        StatusCode::NOT_FOUND,
        r#"{"Message":"No HTTP resource was found that matches the request URI."}"#,
    )
}

fn error_json(status: StatusCode, msg: &str) -> Resp {
    json_value(status, &serde_json::json!({ "error": msg }))
}

/// Token-endpoint replies are not cacheable (as OWIN sends them).
fn no_cache(mut r: Resp) -> Resp {
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

// ---------------------------------------------------------------- forms

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Parses `application/x-www-form-urlencoded` (own code: shares none with core).
pub(crate) fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub(crate) fn percent_decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------- token endpoints

/// A request as received, for the recorded-request logs (form fields left
/// empty; the token endpoint fills them in).
fn recorded(
    provider: Provider,
    host: Host,
    parts: &http::request::Parts,
    body: &[u8],
) -> RecordedRequest {
    RecordedRequest {
        provider,
        method: parts.method.to_string(),
        host: host.hostname().to_owned(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(body).into_owned(),
        form: Vec::new(),
    }
}

async fn token(state: &State, host: Host, req: Request<Incoming>) -> Result<Resp, Abort> {
    let provider = host.provider();
    let ps = state.provider(provider);
    let _in_flight = ps.counters.enter_token();
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, TOKEN_BODY_LIMIT).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            ps.counters.grant(Grant::Other);
            ps.counters.token_status.add(413);
            return Ok(error_json(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
            ));
        }
    };
    let form_ct = is_form(&parts.headers);
    let form = if form_ct {
        parse_form(&body)
    } else {
        Vec::new()
    };
    state.record(RecordedRequest {
        form: form.clone(),
        ..recorded(provider, host, &parts, &body)
    });
    let grant_field = if provider == Provider::Reobtimaal {
        "grant-type"
    } else {
        "grant_type"
    };
    ps.counters.grant(match field(&form, grant_field) {
        Some("password") => Grant::Password,
        Some("refresh_token") => Grant::RefreshToken,
        _ => Grant::Other,
    });

    let (delay, status_fault) = {
        let mut k = lock(&ps.knobs);
        let delay = k.latency.pick();
        (delay, crate::faults::take_status(&mut k.status))
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let resp = if let Some(sf) = status_fault {
        let status = StatusCode::from_u16(sf.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = json_value(
            status,
            &serde_json::json!({ "error": "emulated_fault", "status": sf.status }),
        );
        if let Some(secs) = sf.retry_after {
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    } else if parts.method != Method::POST {
        let mut r = json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"error":"invalid_request","error_description":"The token endpoint accepts POST only."}"#,
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        r
    } else {
        let outcome = match provider {
            Provider::Reobtimaal => reob_grant(state, &form),
            Provider::Twoba => twoba_grant(state, &form),
            Provider::Bro => Err(Reject(r#"{"error":"no_token_endpoint"}"#)),
        };
        match outcome {
            Err(Reject(body)) => json_response(StatusCode::BAD_REQUEST, body),
            Ok(issued) => {
                let fault = {
                    let mut k = lock(&ps.knobs);
                    let f = k.reply.as_mut().map(|r| {
                        r.count = r.count.saturating_sub(1);
                        r.fault
                    });
                    if k.reply.is_some_and(|r| r.count == 0) {
                        k.reply = None;
                    }
                    f
                };
                match token_reply(provider, &issued, fault) {
                    Some(r) => r,
                    None => {
                        ps.counters.token_aborted.fetch_add(1, Relaxed);
                        return Err(Abort("close-without-reply fault"));
                    }
                }
            }
        }
    };
    let reply_delay = lock(&ps.knobs).reply_delay;
    if !reply_delay.is_zero() {
        tokio::time::sleep(reply_delay).await;
    }
    ps.counters.token_status.add(resp.status().as_u16());
    Ok(no_cache(resp))
}

fn reob_grant(state: &State, form: &[(String, String)]) -> Result<Issued, Reject> {
    if field(form, "grant-type") != Some("password") {
        return Err(unsupported_grant());
    }
    let (Some(user), Some(password)) = (field(form, "username"), field(form, "Password")) else {
        return Err(Reject(INVALID_CREDENTIALS));
    };
    match state.check_reob_user(user, password) {
        Some(admin) => Ok(state.issue(Provider::Reobtimaal, user.into(), admin, None)),
        None => Err(Reject(INVALID_CREDENTIALS)),
    }
}

/// A refused grant: 400 with this JSON body.
struct Reject(&'static str);

fn unsupported_grant() -> Reject {
    Reject(r#"{"error":"unsupported_grant_type"}"#)
}

fn invalid_grant() -> Reject {
    Reject(r#"{"error":"invalid_grant"}"#)
}

fn twoba_grant(state: &State, form: &[(String, String)]) -> Result<Issued, Reject> {
    let client_id = field(form, "client_id").unwrap_or_default();
    let secret = field(form, "client_secret").unwrap_or_default();
    if state.check_twoba_client(client_id, secret) != Some(true) {
        return Err(Reject(r#"{"error":"invalid_client"}"#));
    }
    match field(form, "grant_type") {
        Some("password") => {
            let (Some(user), Some(password)) = (field(form, "username"), field(form, "password"))
            else {
                return Err(Reject(INVALID_CREDENTIALS));
            };
            if !state.check_twoba_user(user, password) {
                return Err(Reject(INVALID_CREDENTIALS));
            }
            Ok(state.issue(Provider::Twoba, user.into(), false, Some(client_id.into())))
        }
        Some("refresh_token") => {
            let Some(refresh) = field(form, "refresh_token") else {
                return Err(invalid_grant());
            };
            match state.use_refresh(refresh, client_id) {
                Ok(user) => Ok(state.issue(Provider::Twoba, user, false, Some(client_id.into()))),
                Err(e) => {
                    if e == RefreshError::Reused {
                        state
                            .provider(Provider::Twoba)
                            .counters
                            .refresh_reuse
                            .fetch_add(1, Relaxed);
                    }
                    Err(invalid_grant())
                }
            }
        }
        Some("authorization_code") => {
            let code = field(form, "code").unwrap_or_default();
            let redirect_uri = field(form, "redirect_uri");
            let verifier = field(form, "code_verifier");
            match state.use_code(code, client_id, redirect_uri, verifier) {
                Ok(user) => {
                    Ok(state.issue(Provider::Twoba, user.into(), false, Some(client_id.into())))
                }
                Err(_) => Err(invalid_grant()),
            }
        }
        _ => Err(unsupported_grant()),
    }
}

/// The success reply, possibly damaged; `None`: close without reply.
fn token_reply(provider: Provider, issued: &Issued, fault: Option<ReplyFault>) -> Option<Resp> {
    use serde_json::Value;
    let mut fields: Vec<(&str, Value)> = vec![("access_token", issued.access_token.clone().into())];
    if provider == Provider::Twoba {
        fields.push(("token_type", "bearer".into()));
        fields.push(("expires_in", issued.expires_in.into()));
        if let Some(r) = &issued.refresh_token {
            fields.push(("refresh_token", r.clone().into()));
        }
    }
    match fault {
        Some(ReplyFault::MissingToken) => fields.retain(|(k, _)| *k != "access_token"),
        Some(ReplyFault::WrongTokenType) => {
            if let Some(f) = fields.first_mut() {
                f.1 = Value::from(fastrand::u32(1..u32::MAX));
            }
        }
        Some(ReplyFault::ExpiresIn { value }) => {
            match fields.iter_mut().find(|(k, _)| *k == "expires_in") {
                Some(f) => f.1 = value.into(),
                None => fields.push(("expires_in", value.into())),
            }
        }
        _ => {}
    }
    let mut body = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!("\"{k}\":{v}"));
    }
    body.push('}');
    let ok = |b: EmuBody| {
        let mut r = json_response(StatusCode::OK, Bytes::new());
        *r.body_mut() = b;
        r
    };
    Some(match fault {
        Some(ReplyFault::CloseWithoutReply) => return None,
        Some(ReplyFault::MalformedJson) => {
            let cut = body.len() * 2 / 3;
            json_response(StatusCode::OK, Bytes::from(body).slice(..cut))
        }
        Some(ReplyFault::TruncatedBody) => {
            let full = Bytes::from(body);
            let mut r = ok(EmuBody::Truncated(Some(full.slice(..full.len() / 2)), None));
            r.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(full.len()));
            r
        }
        Some(ReplyFault::OversizedBody { bytes }) => {
            // `{"access_token":"…","padding":"xxxx…"}`, `bytes` long in total.
            let head = format!("{},\"padding\":\"", &body[..body.len() - 1]);
            let tail = "\"}";
            let fixed = (head.len() + tail.len()) as u64;
            ok(EmuBody::Stream {
                head: Some(head.into()),
                chunk: Bytes::from(vec![b'x'; 64 * 1024]),
                remaining: bytes.saturating_sub(fixed),
                tail: Some(Bytes::from_static(tail.as_bytes())),
            })
        }
        _ => json_response(StatusCode::OK, body),
    })
}

// ---------------------------------------------------------------- device grant

/// A request to the device grant fixture (see [`crate::device`]).
async fn device_request(state: &State, sub: &str, req: Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    let fixture = &state.device;
    let answer = if sub.starts_with("/api/") {
        fixture.api(
            parts
                .headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        )
    } else {
        if parts.method != Method::POST {
            return error_json(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        }
        if !is_form(&parts.headers) {
            return error_json(StatusCode::BAD_REQUEST, "invalid_request");
        }
        let body = match Limited::new(body, TOKEN_BODY_LIMIT).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => return error_json(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large"),
        };
        let form = parse_form(&body);
        match sub {
            "/oauth/device/code" => {
                let host = parts
                    .headers
                    .get(HOST)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("127.0.0.1");
                fixture.authorize(&form, &format!("http://{host}"))
            }
            "/oauth/token" => fixture.token(&form),
            "/approve" | "/deny" => {
                let code = field(&form, "user_code").unwrap_or_default();
                if fixture.decide(code, sub == "/approve") {
                    crate::device::DeviceAnswer {
                        status: 200,
                        body: r#"{"ok":true}"#.to_owned(),
                    }
                } else {
                    crate::device::DeviceAnswer {
                        status: 404,
                        body: r#"{"error":"unknown_user_code"}"#.to_owned(),
                    }
                }
            }
            _ => return not_found(),
        }
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    no_cache(json_response(status, answer.body))
}

// ---------------------------------------------------------------- documented shapes

/// A request to one of the [`Shape`]s: its token endpoint or its API.
async fn shape_request(state: &State, shape: Shape, sub: &str, req: Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    let answer = if sub.eq_ignore_ascii_case(shape.token_path()) {
        let body = match Limited::new(body, TOKEN_BODY_LIMIT).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => return error_json(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large"),
        };
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        no_cache_answer(
            state
                .shapes
                .token(shape, parts.method.as_str(), content_type, &body),
        )
    } else {
        let credential = parts
            .headers
            .get(credential_header(shape))
            .and_then(|v| v.to_str().ok());
        state.shapes.api(shape, sub, credential)
    };
    let mut r = Response::new(EmuBody::full(answer.body));
    *r.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
    for (name, value) in answer.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.append(name, v);
        }
    }
    r
}

fn no_cache_answer(mut a: crate::shapes::Answer) -> crate::shapes::Answer {
    a.headers.push(("cache-control", "no-store".to_owned()));
    a
}

// ---------------------------------------------------------------- protected APIs

#[derive(Serialize)]
struct ApiReply<'a> {
    user: &'a str,
    provider: &'static str,
    method: &'a str,
    path: &'a str,
    body_bytes: usize,
}

async fn api(state: &State, host: Host, sub: &str, req: Request<Incoming>) -> Resp {
    let provider = host.provider();
    let ps = state.provider(provider);
    ps.counters.api_request();
    let latency = state.api_latency_nanos.load(Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_nanos(latency)).await;
    }
    let forced = crate::faults::take_status(&mut lock(&ps.knobs).api_status);
    if let Some(fault) = forced {
        let status =
            StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ps.counters.api_status.add(status.as_u16());
        let mut r = error_json(status, "emulated_fault");
        if let Some(secs) = fault.retry_after {
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        return r;
    }
    let (parts, body) = req.into_parts();
    let body = if hyper::body::Body::is_end_stream(&body) {
        Bytes::new()
    } else {
        match Limited::new(body, API_BODY_LIMIT).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => {
                ps.counters.api_status.add(413);
                return error_json(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large");
            }
        }
    };
    let body_bytes = body.len();
    if state.records_api() {
        state.record_api(recorded(provider, host, &parts, &body));
    }
    let reply = |user: &str| {
        json_value(
            StatusCode::OK,
            &ApiReply {
                user,
                provider: provider.name(),
                method: parts.method.as_str(),
                path: sub,
                body_bytes,
            },
        )
    };
    let resp = match provider {
        Provider::Bro => match basic_credentials(&parts.headers) {
            Some((user, password)) if state.check_bro(&user, &password) => reply(&user),
            _ => {
                let mut r = json_response(StatusCode::UNAUTHORIZED, DENIED);
                r.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"bronhouderportaal\""),
                );
                r
            }
        },
        Provider::Reobtimaal | Provider::Twoba => {
            match bearer_token(&parts.headers).and_then(|t| ps.tokens.get(t)) {
                Some(entry) if ps.superseded(&entry) => {
                    json_response(StatusCode::FORBIDDEN, SUPERSEDED)
                }
                Some(entry) => {
                    if provider == Provider::Reobtimaal
                        && starts_with_ci(sub, "/api/v1/beheer/")
                        && !entry.admin
                    {
                        json_response(
                            StatusCode::FORBIDDEN,
                            r#"{"Message":"The user has no right to this part of the API."}"#,
                        )
                    } else {
                        reply(&entry.user)
                    }
                }
                None => {
                    let mut r = json_response(StatusCode::UNAUTHORIZED, DENIED);
                    r.headers_mut()
                        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    r
                }
            }
        }
    };
    ps.counters.api_status.add(resp.status().as_u16());
    resp
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// (username, password) of `Authorization: Basic …`, split at the first `:`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(b64.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (u, p) = decoded.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

// ---------------------------------------------------------------- control API

/// Body of `POST /_emulator/revoke` (optional; empty revokes everything).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    provider: Option<Provider>,
    bro_username: Option<String>,
}

/// All knobs, as JSON for `/_emulator/faults`.
#[derive(Serialize)]
pub(crate) struct AllKnobs {
    pub(crate) reobtimaal: ProviderKnobs,
    pub(crate) twoba: ProviderKnobs,
    pub(crate) bro: ProviderKnobs,
    pub(crate) api_latency_ms: f64,
}

pub(crate) fn all_knobs(state: &State) -> AllKnobs {
    let k = |p| lock(&state.provider(p).knobs).snapshot();
    AllKnobs {
        reobtimaal: k(Provider::Reobtimaal),
        twoba: k(Provider::Twoba),
        bro: k(Provider::Bro),
        api_latency_ms: duration_to_ms(Duration::from_nanos(state.api_latency_nanos.load(Relaxed))),
    }
}

/// Applies a [`FaultUpdate`]; nothing changes if it is invalid.
pub(crate) fn update_faults(state: &State, u: &FaultUpdate) -> Result<(), String> {
    let api_latency = u.api_latency_ms.map(ms_to_duration).transpose()?;
    let provider_specific = u.clear
        || u.token_latency_ms.is_some()
        || u.status.is_some()
        || u.reply.is_some()
        || u.access_token_lifetime_ms.is_some()
        || u.refresh_token_lifetime_ms.is_some()
        || u.jwt_access_tokens.is_some()
        || u.revoke_on_reissue.is_some();
    match u.provider {
        Some(p) => lock(&state.provider(p).knobs).apply(u)?,
        None if provider_specific => {
            return Err(
                "set \"provider\" to \"reobtimaal\", \"twoba\" or \"bro\": only api_latency_ms is global"
                    .to_owned(),
            );
        }
        None => {}
    }
    if let Some(d) = api_latency {
        state.set_api_latency(d);
    }
    Ok(())
}

async fn control(state: &State, op: &str, req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    let body = match Limited::new(req.into_body(), TOKEN_BODY_LIMIT)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(_) => return error_json(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large"),
    };
    let parse = |b: &Bytes| -> Result<Option<serde_json::Value>, String> {
        if b.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(b)
            .map(Some)
            .map_err(|e| format!("invalid JSON: {e}"))
    };
    match (method, op) {
        (Method::GET, "stats") => json_value(StatusCode::OK, &crate::server::stats_of(state)),
        (Method::GET, "requests") => json_value(StatusCode::OK, &state.recorded()),
        (Method::GET, "faults") => json_value(StatusCode::OK, &all_knobs(state)),
        (Method::POST, "faults") => {
            let update = parse(&body).and_then(|v| {
                serde_json::from_value::<FaultUpdate>(v.unwrap_or_default())
                    .map_err(|e| format!("invalid fault update: {e}"))
            });
            match update.and_then(|u| update_faults(state, &u)) {
                Ok(()) => json_value(StatusCode::OK, &all_knobs(state)),
                Err(e) => error_json(StatusCode::BAD_REQUEST, &e),
            }
        }
        (Method::POST, "revoke") => {
            let req = parse(&body).and_then(|v| match v {
                None => Ok(RevokeRequest::default()),
                Some(v) => serde_json::from_value::<RevokeRequest>(v)
                    .map_err(|e| format!("invalid revoke request: {e}")),
            });
            match req {
                Ok(RevokeRequest {
                    bro_username: Some(u),
                    ..
                }) => {
                    state.revoke_bro_token(&u);
                    json_value(
                        StatusCode::OK,
                        &serde_json::json!({ "revoked": { "bro_username": u } }),
                    )
                }
                Ok(RevokeRequest { provider, .. }) => {
                    state.revoke(provider);
                    let what = provider.map_or("all", Provider::name);
                    json_value(StatusCode::OK, &serde_json::json!({ "revoked": what }))
                }
                Err(e) => error_json(StatusCode::BAD_REQUEST, &e),
            }
        }
        (Method::POST, "reset") => {
            state.reset();
            json_response(StatusCode::OK, r#"{"reset":true}"#)
        }
        (Method::POST, "reset_stats") => {
            state.reset_stats();
            json_response(StatusCode::OK, r#"{"reset_stats":true}"#)
        }
        (Method::POST, "clear_requests") => {
            state.clear_recorded();
            json_response(StatusCode::OK, r#"{"clear_requests":true}"#)
        }
        _ => {
            let mut r = not_found();
            *r.body_mut() = EmuBody::full(
                r#"{"error":"unknown control endpoint: use GET stats|requests|faults, POST faults|revoke|reset|reset_stats|clear_requests"}"#,
            );
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_parsing() {
        let f = parse_form(b"grant-type=password&username=a%7Cb+c&Password=%2&x&=v&%zz=1");
        assert_eq!(
            f,
            vec![
                ("grant-type".into(), "password".into()),
                ("username".into(), "a|b c".into()),
                ("Password".into(), "%2".into()),
                ("x".into(), String::new()),
                (String::new(), "v".into()),
                ("%zz".into(), "1".into()),
            ]
        );
        assert_eq!(percent_decode(b"%"), "%");
        assert_eq!(percent_decode(b"a%4"), "a%4");
        assert_eq!(percent_decode(b"%41%42"), "AB");
    }

    #[test]
    fn bearer_and_basic() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic YTpiOmM="));
        assert_eq!(bearer_token(&h), None);
        assert_eq!(basic_credentials(&h), Some(("a".into(), "b:c".into())));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_credentials(&h), None);
    }
}
