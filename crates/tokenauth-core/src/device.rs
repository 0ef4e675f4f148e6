//! The device authorization grant (RFC 8628): see [`DeviceAuthorization`].

use std::fmt;
use std::time::{Duration, SystemTime};

use secrecy::SecretString;
use tracing::debug;

use crate::acquire::device::{Poll, Started};
use crate::connection::Connection;
use crate::error::{DeviceFailure, Error};
use crate::request::ProviderHandle;

/// What RFC 8628 adds to the interval on `slow_down`.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The device authorization grant (RFC 8628): a person approves the
/// connection on another device, and the engine polls the token endpoint
/// until they have.
///
/// 1. [`ProviderHandle::device_authorization`] sends the `[device]` request
///    and returns a [`DeviceAuthorization`]: show its
///    [`user_code`](DeviceAuthorization::user_code) and
///    [`verification_uri`](DeviceAuthorization::verification_uri) to the
///    person.
/// 2. [`DeviceAuthorization::wait`] polls the token endpoint: every
///    `interval` (5 s when the provider gives none), `interval + 5 s` from
///    a `slow_down` on (RFC 8628 §3.5), going on through
///    `authorization_pending`, until a token comes, the person denies
///    ([`DeviceFailure::Denied`]) or the code expires
///    ([`DeviceFailure::Expired`], also when `expires_in` passes without an
///    answer). On success the refresh token is stored through the engine's
///    [`TokenStore`](crate::store::TokenStore) (replacing the connection's
///    old one) and the access token goes into the cache; on failure nothing
///    is stored.
///
/// Waiting uses tokio's timer, so a test on a paused runtime
/// (`tokio::time::pause`) runs the whole schedule in no time.
///
/// ```no_run
/// # async fn run(auth: tokenauth_core::TokenAuth) -> Result<(), tokenauth_core::Error> {
/// let google = auth.provider("google")?;
/// let authorization = google.device_authorization(None).await?;
/// println!(
///     "open {} and enter {}",
///     authorization.verification_uri(),
///     authorization.user_code()
/// );
/// let granted = authorization.wait().await?;
/// println!("token valid until {:?}", granted.expires_at);
/// # Ok(())
/// # }
/// ```
///
/// A device authorization in progress: what to show the person, and
/// [`wait`](Self::wait) to poll for the token.
///
/// The device code itself stays inside: `Debug` leaves it out, and it is
/// never logged or put in an error.
pub struct DeviceAuthorization {
    handle: ProviderHandle,
    connection: Connection,
    device_code: SecretString,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: Duration,
    interval: Duration,
    started: tokio::time::Instant,
}

/// What a completed device authorization obtained.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DeviceGrant {
    /// When the access token (now in the engine's cache) expires.
    pub expires_at: SystemTime,
    /// The reply carried a refresh token and it was written to the store
    /// (only for a provider with a `[refresh]` table, which can use it).
    pub refresh_token_stored: bool,
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("provider", &self.handle.id())
            .field("connection", &self.connection.id())
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("verification_uri_complete", &self.verification_uri_complete)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl ProviderHandle {
    /// Starts the device authorization grant (RFC 8628) for `connection`
    /// (`None`: the default connection): sends the `[device]` request. Show
    /// the result's user code and verification URI to the person, then
    /// [`wait`](DeviceAuthorization::wait).
    ///
    /// Fails with [`Error::Device`] ([`DeviceFailure::NotOffered`]) when the
    /// provider has no `[device]` table, [`Error::DeviceReply`] when the
    /// reply lacks a value, or the usual token-request errors.
    pub async fn device_authorization(
        &self,
        connection: Option<&Connection>,
    ) -> Result<DeviceAuthorization, Error> {
        let conn = match connection {
            Some(c) => c.clone(),
            None => self.default_connection()?.clone(),
        };
        let provider = self.provider();
        let Some(device) = &provider.device else {
            return Err(Error::Device {
                provider: provider.id.clone(),
                connection: conn.id().to_owned(),
                reason: DeviceFailure::NotOffered,
            });
        };
        let inner = &self.auth().inner;
        let started: Started = inner
            .acquirer(self.index(), &conn)
            .device_start(device)
            .await?;
        debug!(provider = %provider.id, connection = %conn.id(), expires_in_s = started.expires_in.as_secs(), interval_ms = started.interval.as_millis() as u64, "device authorization started");
        Ok(DeviceAuthorization {
            handle: self.clone(),
            connection: conn,
            device_code: started.device_code,
            user_code: started.user_code,
            verification_uri: started.verification_uri,
            verification_uri_complete: started.verification_uri_complete,
            expires_in: started.expires_in,
            interval: started.interval,
            started: tokio::time::Instant::now(),
        })
    }
}

impl DeviceAuthorization {
    /// The code the person enters at the verification URI.
    pub fn user_code(&self) -> &str {
        &self.user_code
    }

    /// Where the person enters the code.
    pub fn verification_uri(&self) -> &str {
        &self.verification_uri
    }

    /// The verification URI with the code in it, when the provider gives
    /// one (for a link or a QR code).
    pub fn verification_uri_complete(&self) -> Option<&str> {
        self.verification_uri_complete.as_deref()
    }

    /// How long the codes are valid from the reply on.
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }

    /// The polling interval the provider asked for (5 s when it gave none).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The connection the grant is for.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Polls the token endpoint until the person approves, denies, or the
    /// code expires (see [`DeviceAuthorization`]). Each poll waits the
    /// current interval first; `slow_down` adds 5 s to it for good. A poll
    /// that would come after `expires_in` is not sent:
    /// [`DeviceFailure::Expired`]. A token-request error other than the
    /// RFC 8628 codes (a 5xx after the retries, `invalid_client`, ...)
    /// ends the wait with that error.
    ///
    /// Dropping the future stops polling; nothing is stored then.
    pub async fn wait(self) -> Result<DeviceGrant, Error> {
        let deadline = self.started + self.expires_in;
        let mut interval = self.interval;
        let provider = self.handle.provider();
        let inner = &self.handle.auth().inner;
        let index = self.handle.index();
        let fail = |reason| Error::Device {
            provider: provider.id.clone(),
            connection: self.connection.id().to_owned(),
            reason,
        };
        let Some(device) = &provider.device else {
            return Err(fail(DeviceFailure::NotOffered));
        };
        let mut polls: u32 = 0;
        loop {
            let next = tokio::time::Instant::now() + interval;
            if next > deadline {
                debug!(provider = %provider.id, connection = %self.connection.id(), polls, "device code expired while waiting");
                return Err(fail(DeviceFailure::Expired));
            }
            tokio::time::sleep_until(next).await;
            polls += 1;
            let poll = inner
                .acquirer(index, &self.connection)
                .device_poll(device, &self.device_code)
                .await?;
            match poll {
                Poll::Pending => {
                    debug!(provider = %provider.id, connection = %self.connection.id(), polls, "authorization pending");
                }
                Poll::SlowDown => {
                    interval += SLOW_DOWN_STEP;
                    debug!(provider = %provider.id, connection = %self.connection.id(), polls, interval_ms = interval.as_millis() as u64, "slow_down: polling less often");
                }
                Poll::Failed(reason) => return Err(fail(reason)),
                Poll::Done {
                    acquired,
                    refresh_token_stored,
                } => {
                    let expires_at = inner
                        .publish_granted(index, &self.connection, acquired)
                        .await?;
                    debug!(provider = %provider.id, connection = %self.connection.id(), polls, refresh_token_stored, "device authorization granted");
                    return Ok(DeviceGrant {
                        expires_at,
                        refresh_token_stored,
                    });
                }
            }
        }
    }
}
