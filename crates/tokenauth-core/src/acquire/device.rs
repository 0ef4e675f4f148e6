//! The device authorization grant (RFC 8628) on top of the acquirer: the
//! device authorization request, and one poll of the token endpoint. The
//! waiting between polls is [`crate::device`]'s.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;

use super::{Acquired, Acquirer};
use crate::config::{BodyFormat, Device, FieldValue, JsonPointer, TokenRequest};
use crate::error::{DeviceFailure, Error, RequestKind};
use crate::template::Template;

/// The `grant_type` of a poll (RFC 8628 §3.4).
pub(crate) const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The polling interval when the reply gives none (RFC 8628 §3.2).
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// The device authorization reply, read.
pub(crate) struct Started {
    pub(crate) device_code: SecretString,
    pub(crate) user_code: String,
    pub(crate) verification_uri: String,
    pub(crate) verification_uri_complete: Option<String>,
    pub(crate) expires_in: Duration,
    pub(crate) interval: Duration,
}

/// What one poll said.
pub(crate) enum Poll {
    /// A token: the refresh token is stored (when the reply had one and the
    /// provider has a `[refresh]` to use it).
    Done {
        acquired: Acquired,
        refresh_token_stored: bool,
    },
    /// `authorization_pending`: ask again after the interval.
    Pending,
    /// `slow_down`: ask again after the interval plus 5 s.
    SlowDown,
    /// `access_denied` or `expired_token`.
    Failed(DeviceFailure),
}

impl Acquirer<'_> {
    /// Sends the device authorization request and reads its reply.
    pub(crate) async fn device_start(&self, device: &Device) -> Result<Started, Error> {
        self.conn.check(self.provider)?;
        let kind = RequestKind::Device;
        let mut req = device.request.clone();
        if !device.scopes.is_empty() {
            let scope = device.scopes.join(&device.scope_separator);
            req.fields.push((
                "scope".to_owned(),
                FieldValue::Text(Template::literal(&scope)),
            ));
        }
        let reply = self.send(kind, &req, None).await?;
        let url = self.url(kind);
        if !reply.status.is_success() {
            return Err(self.status_error(kind, url, &reply, None));
        }
        let json: Value = serde_json::from_slice(&reply.body)
            .map_err(|e| self.not_json(kind, url, &reply, &e))?;
        let r = &device.reply;
        let missing = |key: &'static str, pointer: &JsonPointer| Error::DeviceReply {
            provider: self.provider.id.clone(),
            key,
            pointer: pointer.as_str().to_owned(),
            keys: json
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
        };
        let text = |key, pointer: &JsonPointer| {
            pointer
                .find(&json)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| missing(key, pointer))
        };
        // Seconds, as a number or a numeric string; fractions are allowed
        // (a test fixture's sub-second interval).
        let seconds = |pointer: &JsonPointer| -> Option<Option<Duration>> {
            let v = pointer.find(&json)?;
            let n = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            Some(
                n.filter(|n| n.is_finite() && *n >= 0.0 && *n <= 31_557_600.0)
                    .map(Duration::from_secs_f64),
            )
        };
        let device_code = SecretString::from(text("device_code", &r.device_code)?);
        let user_code = text("user_code", &r.user_code)?;
        let verification_uri = text("verification_uri", &r.verification_uri)?;
        let verification_uri_complete =
            text("verification_uri_complete", &r.verification_uri_complete).ok();
        let expires_in = match seconds(&r.expires_in) {
            Some(Some(d)) if !d.is_zero() => d,
            _ => return Err(missing("expires_in", &r.expires_in)),
        };
        let interval = match seconds(&r.interval) {
            None => DEFAULT_INTERVAL,
            Some(Some(d)) => d,
            Some(None) => return Err(missing("interval", &r.interval)),
        };
        Ok(Started {
            device_code,
            user_code,
            verification_uri,
            verification_uri_complete,
            expires_in,
            interval,
        })
    }

    /// The polling request: to the login's token URL (the refresh's in a
    /// refresh-only provider), a form with `grant_type`, `device_code` and
    /// the `[device]` fields, the login's headers and Basic credentials.
    /// The device code goes in as the `{{ token.refresh }}` placeholder, so
    /// that every error about the poll scrubs it like a refresh token.
    fn poll_request(&self, device: &Device) -> Result<(RequestKind, TokenRequest), Error> {
        let (kind, base) = match (&self.provider.login, &self.provider.refresh) {
            (Some(login), _) => (RequestKind::Login, login),
            (None, Some(refresh)) => (RequestKind::Refresh, &refresh.request),
            (None, None) => {
                return Err(Error::Device {
                    provider: self.provider.id.clone(),
                    connection: self.conn.id().to_owned(),
                    reason: DeviceFailure::NotOffered,
                });
            }
        };
        let mut fields = vec![
            (
                "grant_type".to_owned(),
                FieldValue::Text(Template::literal(DEVICE_CODE_GRANT)),
            ),
            (
                "device_code".to_owned(),
                FieldValue::Text(Template::parse("{{ token.refresh }}").expect("a valid template")),
            ),
        ];
        fields.extend(
            device
                .request
                .fields
                .iter()
                .filter(|(name, v)| {
                    v.as_text().is_some() && name != "grant_type" && name != "device_code"
                })
                .cloned(),
        );
        let mut req = base.clone();
        req.method = http::Method::POST;
        req.body = BodyFormat::Form;
        req.fields = fields;
        Ok((kind, req))
    }

    /// One poll. On success stores the refresh token (replacing whatever
    /// the store held for the connection: a person just granted a new
    /// one) before the access token is handed out.
    pub(crate) async fn device_poll(
        &self,
        device: &Device,
        code: &SecretString,
    ) -> Result<Poll, Error> {
        let (kind, req) = self.poll_request(device)?;
        let reply = self.send(kind, &req, Some(code)).await?;
        if !reply.status.is_success() {
            let error = serde_json::from_slice::<Value>(&reply.body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned));
            match error.as_deref() {
                Some("authorization_pending") => return Ok(Poll::Pending),
                Some("slow_down") => return Ok(Poll::SlowDown),
                Some("access_denied") => return Ok(Poll::Failed(DeviceFailure::Denied)),
                Some("expired_token") => return Ok(Poll::Failed(DeviceFailure::Expired)),
                _ => {}
            }
        }
        // A success, or an error of another kind (typed by `interpret`,
        // with the device code scrubbed from the excerpt).
        let mut parsed = self.interpret(kind, &reply, Some(code))?;
        let mut refresh_token_stored = false;
        if let Some(new) = parsed.refresh.take()
            && self.provider.refresh.is_some()
        {
            let held = self.load().await?;
            let outcome = self.swap_refresh(held.as_ref(), Some(&new)).await?;
            refresh_token_stored = matches!(outcome, crate::store::CasOutcome::Written);
            if !refresh_token_stored {
                // Another worker replaced it between the read and the write:
                // this grant is newer than anything it could have stored.
                let current = self.load().await?;
                refresh_token_stored = matches!(
                    self.swap_refresh(current.as_ref(), Some(&new)).await?,
                    crate::store::CasOutcome::Written
                );
            }
            if refresh_token_stored {
                tracing::debug!(provider = %self.provider.id, connection = %self.conn.id(), "device grant: refresh token stored");
            }
        }
        Ok(Poll::Done {
            acquired: Acquired {
                access: parsed.access,
                expires_at: parsed.expires_at,
                api_base: parsed.api_base,
                kind,
            },
            refresh_token_stored,
        })
    }
}
