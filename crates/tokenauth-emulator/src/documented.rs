//! The "documented reply" server: catalog providers' token endpoints and
//! APIs as their public documentation describes them, on loopback TLS under
//! their real host names.
//!
//! It is the fixture for `catalog/`: each provider below was written from
//! the provider's documentation (not from the catalog file and not from
//! `tokenauth-core`), so a catalog description that sends the wrong method,
//! content type, field, client authentication or credential location is
//! rejected here as the real provider would.
//!
//! - A token endpoint checks the method (`POST`), the content type
//!   (`application/x-www-form-urlencoded`, or `application/json` where the
//!   documentation has a JSON body, which must then equal the documented
//!   one), every documented form field and, where documented, HTTP Basic
//!   client authentication (decoded as RFC 6749 §2.3.1 says: base64, then
//!   form-decoded). A good request gets a fresh token in the provider's
//!   documented shape (in the JSON body, a reply header such as Keystone's
//!   `X-Subject-Token`, or a `Set-Cookie` session); a bad one gets `400`
//!   (`invalid_request`, `unsupported_grant_type`, `invalid_grant`) or `401`
//!   (`invalid_client`), and the reason is kept in [`DocStats::rejections`].
//! - An API request must carry the credential where the documentation puts
//!   it (a token issued here after its scheme, in a named header or in a
//!   cookie; a static key after a scheme or in a named header; HTTP Basic;
//!   query parameters) plus any other header the documentation requires;
//!   else `401`.
//!
//! - A refresh token that rotates (Exact Online) works once: the reply
//!   carries the next one, and the used one gets `400 invalid_grant`.
//!
//! Accounts follow one convention, all fake: for provider `ID`, the client
//! id is `ID-demo-client`, the client secret `ID-demo-client-secret`, the
//! refresh token `ID-demo-refresh-token`, a static API key or token
//! `ID-demo-key`, a user name `ID-demo-user` and its password
//! `ID-demo-password` (see [`DocAccount`]). A tenant, subdomain, shop or
//! realm in a URL is `ID-demo-tenant` (`okta-demo-tenant.okta.com`,
//! `/realms/keycloak-demo-tenant/`); a host the reply names (Salesforce's
//! `instance_url`) is served too. Only these hosts and paths answer: a
//! connection rendered with other values reaches nothing here.
//!
//! ```
//! use tokenauth_emulator::documented::{DocAccount, DocumentedServer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = DocumentedServer::start()?;
//! assert!(server.providers().contains(&"spotify"));
//! assert!(server.host_overrides().iter().any(|(h, _)| *h == "accounts.spotify.com"));
//! assert_eq!(DocAccount::of("spotify").client_id, "spotify-demo-client");
//! assert_eq!(server.stats("spotify").token_requests, 0);
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::handler::{parse_form, percent_decode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::tls;

/// How the documented API expects the credential.
#[derive(Clone, Copy, Debug)]
enum ApiCred {
    /// `Authorization: <scheme> <token issued by this provider's token
    /// endpoint>` (the scheme compared without regard to case).
    Issued(&'static str),
    /// `Authorization: <scheme> <ID-demo-key>`.
    Static(&'static str),
    /// The named header holds exactly `<ID-demo-key>`.
    StaticHeader(&'static str),
    /// The named header holds a token issued here.
    IssuedHeader(&'static str),
    /// The `Cookie` header has this cookie, holding a token issued here.
    IssuedCookie(&'static str),
    /// HTTP Basic with this user name and password, compared as sent: an
    /// API's Basic credentials are not form-decoded (RFC 6749 §2.3.1 is
    /// about OAuth client authentication only).
    Basic(Want, Want),
    /// These query parameters, with these values.
    Query(&'static [(&'static str, Want)]),
}

/// A documented value: what a form field, header or credential must be.
#[derive(Clone, Copy, Debug)]
enum Want {
    Literal(&'static str),
    ClientId,
    ClientSecret,
    /// The account's refresh token; for a provider whose refresh tokens
    /// rotate, the latest one issued.
    RefreshToken,
    /// The static key, `ID-demo-key`.
    Key,
    /// The user name, `ID-demo-user`.
    User,
    /// The password, `ID-demo-password`.
    Password,
    /// The tenant, `ID-demo-tenant` (see [`DocAccount::tenant`]).
    Tenant,
    /// Anything (the documentation says any value will do).
    Any,
}

/// How a documented token request carries its parameters.
#[derive(Clone, Copy, Debug)]
enum ReqBody {
    /// `application/x-www-form-urlencoded`, with [`TokenSpec::fields`].
    Form,
    /// `application/json`, equal to this value (given the account) once
    /// parsed: key order and spacing aside, exactly this.
    Json(fn(&DocAccount) -> Value),
}

/// Where a documented token reply puts the token (the JSON body is the
/// [`TokenSpec::reply`] in every case).
#[derive(Clone, Copy, Debug)]
enum Delivery {
    /// In the JSON body, status 200.
    Body,
    /// In this reply header, status 201 Created (OpenStack Keystone).
    Header(&'static str),
    /// In this `Set-Cookie`, status 200 (a session login).
    Cookie(&'static str),
}

/// A documented token endpoint.
#[derive(Clone, Copy, Debug)]
struct TokenSpec {
    host: &'static str,
    path: &'static str,
    body: ReqBody,
    delivery: Delivery,
    fields: &'static [(&'static str, Want)],
    /// Client id and secret as HTTP Basic (else they must not be in a header).
    basic_client: bool,
    /// Every good request gets a new refresh token, and the one it used
    /// stops working.
    rotates: bool,
    /// The documented reply, given a fresh access token and the refresh
    /// token to hand out (the new one when they rotate, else the account's).
    reply: fn(&str, &str) -> Value,
}

/// One provider as its documentation describes it.
#[derive(Clone, Copy, Debug)]
struct DocProvider {
    id: &'static str,
    token: Option<TokenSpec>,
    api_host: &'static str,
    api_prefix: &'static str,
    cred: ApiCred,
    /// Other headers the documentation says every request must carry.
    required_headers: &'static [&'static str],
    /// Headers that must carry exactly these values.
    required_values: &'static [(&'static str, Want)],
}

const CC: (&str, Want) = ("grant_type", Want::Literal("client_credentials"));

/// The documented providers. Each entry says where its facts come from.
const PROVIDERS: &[DocProvider] = &[
    // https://developer.spotify.com/documentation/web-api/tutorials/client-credentials-flow
    DocProvider {
        id: "spotify",
        token: Some(TokenSpec {
            host: "accounts.spotify.com",
            path: "/api/token",
            body: ReqBody::Form,
            delivery: Delivery::Body,
            fields: &[CC],
            basic_client: true,
            rotates: false,
            reply: |t, _| json!({"access_token": t, "token_type": "bearer", "expires_in": 3600}),
        }),
        api_host: "api.spotify.com",
        api_prefix: "/v1/",
        cred: ApiCred::Issued("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // https://developer.paypal.com/api/rest/authentication/
    DocProvider {
        id: "paypal",
        token: Some(TokenSpec {
            host: "api-m.paypal.com",
            path: "/v1/oauth2/token",
            body: ReqBody::Form,
            delivery: Delivery::Body,
            fields: &[CC],
            basic_client: true,
            rotates: false,
            reply: |t, _| {
                json!({
                    "scope": "https://uri.paypal.com/services/invoicing openid",
                    "access_token": t,
                    "token_type": "Bearer",
                    "app_id": "APP-DEMO0000000000000",
                    "expires_in": 32400,
                    "nonce": "2026-12-02T08:00:00ZdemoNonce"
                })
            },
        }),
        api_host: "api-m.paypal.com",
        api_prefix: "/v1/notifications/",
        cred: ApiCred::Issued("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // https://developers.amadeus.com/self-service/apis-docs/guides/developer-guides/API-Keys/authorization/
    DocProvider {
        id: "amadeus",
        token: Some(TokenSpec {
            host: "test.api.amadeus.com",
            path: "/v1/security/oauth2/token",
            body: ReqBody::Form,
            delivery: Delivery::Body,
            fields: &[
                CC,
                ("client_id", Want::ClientId),
                ("client_secret", Want::ClientSecret),
            ],
            basic_client: false,
            rotates: false,
            reply: |t, _| {
                json!({
                    "type": "amadeusOAuth2Token",
                    "username": "demo@example.com",
                    "application_name": "tokenauth demo",
                    "client_id": "amadeus-demo-client",
                    "token_type": "Bearer",
                    "access_token": t,
                    "expires_in": 1799,
                    "state": "approved",
                    "scope": ""
                })
            },
        }),
        api_host: "test.api.amadeus.com",
        api_prefix: "/v1/reference-data/",
        cred: ApiCred::Issued("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // https://www.dropbox.com/developers/documentation/http/documentation#oauth2-token
    DocProvider {
        id: "dropbox",
        token: Some(TokenSpec {
            host: "api.dropboxapi.com",
            path: "/oauth2/token",
            body: ReqBody::Form,
            delivery: Delivery::Body,
            fields: &[
                ("grant_type", Want::Literal("refresh_token")),
                ("refresh_token", Want::RefreshToken),
            ],
            basic_client: true,
            rotates: false,
            reply: |t, _| json!({"access_token": t, "token_type": "bearer", "expires_in": 14400}),
        }),
        api_host: "api.dropboxapi.com",
        api_prefix: "/2/",
        cred: ApiCred::Issued("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // https://developers.google.com/identity/protocols/oauth2/web-server#offline
    DocProvider {
        id: "google",
        token: Some(TokenSpec {
            host: "oauth2.googleapis.com",
            path: "/token",
            body: ReqBody::Form,
            delivery: Delivery::Body,
            fields: &[
                ("client_id", Want::ClientId),
                ("client_secret", Want::ClientSecret),
                ("grant_type", Want::Literal("refresh_token")),
                ("refresh_token", Want::RefreshToken),
            ],
            basic_client: false,
            rotates: false,
            reply: |t, _| {
                json!({
                    "access_token": t,
                    "expires_in": 3599,
                    "scope": "openid https://www.googleapis.com/auth/userinfo.email",
                    "token_type": "Bearer"
                })
            },
        }),
        api_host: "openidconnect.googleapis.com",
        api_prefix: "/v1/userinfo",
        cred: ApiCred::Issued("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // https://docs.github.com/en/rest/authentication/authenticating-to-the-rest-api
    // (and: requests without a User-Agent are refused)
    DocProvider {
        id: "github",
        token: None,
        api_host: "api.github.com",
        api_prefix: "/",
        cred: ApiCred::Static("Bearer"),
        required_headers: &["user-agent"],
        required_values: &[],
    },
    // https://docs.stripe.com/api/authentication
    DocProvider {
        id: "stripe",
        token: None,
        api_host: "api.stripe.com",
        api_prefix: "/v1/",
        cred: ApiCred::Static("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // https://developers.hubspot.com/docs/api/private-apps
    DocProvider {
        id: "hubspot",
        token: None,
        api_host: "api.hubapi.com",
        api_prefix: "/",
        cred: ApiCred::Static("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // https://developer.moneybird.com/authentication/
    DocProvider {
        id: "moneybird",
        token: None,
        api_host: "moneybird.com",
        api_prefix: "/api/v2/",
        cred: ApiCred::Static("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // https://www.twilio.com/docs/usage/requests-to-twilio
    DocProvider {
        id: "twilio",
        token: None,
        api_host: "api.twilio.com",
        api_prefix: "/2010-04-01/",
        cred: ApiCred::Basic(Want::User, Want::Key),
        required_headers: &[],
        required_values: &[],
    },
    // https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/authentication
    DocProvider {
        id: "sendgrid",
        token: None,
        api_host: "api.sendgrid.com",
        api_prefix: "/v3/",
        cred: ApiCred::Static("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // https://docs.gitlab.com/api/rest/authentication/
    DocProvider {
        id: "gitlab",
        token: None,
        api_host: "gitlab.com",
        api_prefix: "/api/v4/",
        cred: ApiCred::StaticHeader("private-token"),
        required_headers: &[],
        required_values: &[],
    },
    // https://documentation.mailgun.com/docs/mailgun/api-reference/authentication/
    DocProvider {
        id: "mailgun",
        token: None,
        api_host: "api.mailgun.net",
        api_prefix: "/",
        cred: ApiCred::Basic(Want::Literal("api"), Want::Key),
        required_headers: &[],
        required_values: &[],
    },
    // https://airtable.com/developers/web/api/authentication
    DocProvider {
        id: "airtable",
        token: None,
        api_host: "api.airtable.com",
        api_prefix: "/v0/",
        cred: ApiCred::Static("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // https://developers.asana.com/docs/personal-access-token
    DocProvider {
        id: "asana",
        token: None,
        api_host: "app.asana.com",
        api_prefix: "/api/1.0/",
        cred: ApiCred::Static("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // https://developers.cloudflare.com/fundamentals/api/get-started/create-token/
    DocProvider {
        id: "cloudflare",
        token: None,
        api_host: "api.cloudflare.com",
        api_prefix: "/client/v4/",
        cred: ApiCred::Static("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // https://platform.openai.com/docs/api-reference/authentication
    DocProvider {
        id: "openai",
        token: None,
        api_host: "api.openai.com",
        api_prefix: "/v1/",
        cred: ApiCred::Static("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // The providers below put the account in a URL (a tenant, subdomain,
    // realm or data centre: issue 14, item 1), take the API host from the
    // token reply (item 2) or need several credentials (item 3). Each one
    // serves the fake account's own host and path (`DocAccount::tenant`,
    // `DocAccount::host`).
    // https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow
    // (the tenant in the path is `microsoft-entra-demo-tenant`)
    DocProvider {
        id: "microsoft-entra",
        token: Some(TokenSpec {
            host: "login.microsoftonline.com",
            path: "/microsoft-entra-demo-tenant/oauth2/v2.0/token",
            body: ReqBody::Form,
            delivery: Delivery::Body,
            fields: &[
                ("client_id", Want::ClientId),
                (
                    "scope",
                    Want::Literal("https://graph.microsoft.com/.default"),
                ),
                ("client_secret", Want::ClientSecret),
                CC,
            ],
            basic_client: false,
            rotates: false,
            reply: |t, _| json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": t}),
        }),
        api_host: "graph.microsoft.com",
        api_prefix: "/v1.0/",
        cred: ApiCred::Issued("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_username_password_flow.htm
    // (password grant; the reply's instance_url is the org's own host, which
    // every API call must use: here `salesforce-demo-tenant.my.salesforce.com`)
    // and https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/intro_oauth_and_connected_apps.htm
    DocProvider {
        id: "salesforce",
        token: Some(TokenSpec {
            host: "login.salesforce.com",
            path: "/services/oauth2/token",
            body: ReqBody::Form,
            delivery: Delivery::Body,
            fields: &[
                ("grant_type", Want::Literal("password")),
                ("client_id", Want::ClientId),
                ("client_secret", Want::ClientSecret),
                ("username", Want::User),
                ("password", Want::Password),
            ],
            basic_client: false,
            rotates: false,
            reply: |t, _| {
                json!({
                    "access_token": t,
                    "instance_url": "https://salesforce-demo-tenant.my.salesforce.com",
                    "id": "https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA",
                    "token_type": "Bearer",
                    "issued_at": "1764662400000",
                    "signature": "ZGVtby1zaWduYXR1cmU="
                })
            },
        }),
        api_host: "salesforce-demo-tenant.my.salesforce.com",
        api_prefix: "/services/data/",
        cred: ApiCred::Issued("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // https://auth0.com/docs/get-started/authentication-and-authorization-flow/client-credentials-flow/call-your-api-using-the-client-credentials-flow
    // and https://auth0.com/docs/secure/tokens/access-tokens/management-api-access-tokens
    // (the tenant's domain is the host of both; the audience names its API)
    DocProvider {
        id: "auth0",
        token: Some(TokenSpec {
            host: "auth0-demo-tenant.us.auth0.com",
            path: "/oauth/token",
            body: ReqBody::Form,
            delivery: Delivery::Body,
            fields: &[
                CC,
                ("client_id", Want::ClientId),
                ("client_secret", Want::ClientSecret),
                (
                    "audience",
                    Want::Literal("https://auth0-demo-tenant.us.auth0.com/api/v2/"),
                ),
            ],
            basic_client: false,
            rotates: false,
            reply: |t, _| {
                json!({
                    "access_token": t,
                    "token_type": "Bearer",
                    "expires_in": 86400,
                    "scope": "read:clients"
                })
            },
        }),
        api_host: "auth0-demo-tenant.us.auth0.com",
        api_prefix: "/api/v2/",
        cred: ApiCred::Issued("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // https://developer.okta.com/docs/guides/create-an-api-token/main/
    // (`Authorization: SSWS TOKEN` to the org's own Okta domain)
    DocProvider {
        id: "okta",
        token: None,
        api_host: "okta-demo-tenant.okta.com",
        api_prefix: "/api/v1/",
        cred: ApiCred::Static("SSWS"),
        required_headers: &[],
        required_values: &[],
    },
    // https://www.keycloak.org/docs/latest/securing_apps/#_client_credentials_grant
    // and https://www.keycloak.org/docs-api/latest/rest-api/index.html
    // (self-hosted, here at keycloak.example.com; the realm is in the path)
    DocProvider {
        id: "keycloak",
        token: Some(TokenSpec {
            host: "keycloak.example.com",
            path: "/realms/keycloak-demo-tenant/protocol/openid-connect/token",
            body: ReqBody::Form,
            delivery: Delivery::Body,
            fields: &[CC],
            basic_client: true,
            rotates: false,
            reply: |t, _| {
                json!({
                    "access_token": t,
                    "expires_in": 300,
                    "refresh_expires_in": 0,
                    "token_type": "Bearer",
                    "not-before-policy": 0,
                    "scope": "profile email"
                })
            },
        }),
        api_host: "keycloak.example.com",
        api_prefix: "/admin/realms/keycloak-demo-tenant/",
        cred: ApiCred::Issued("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // https://developer.zendesk.com/api-reference/introduction/security-and-auth/#api-token
    // (Basic `{email}/token:{api_token}`; the email is `zendesk-demo-user`)
    // and https://developer.zendesk.com/api-reference/introduction/requests/
    DocProvider {
        id: "zendesk",
        token: None,
        api_host: "zendesk-demo-tenant.zendesk.com",
        api_prefix: "/api/v2/",
        cred: ApiCred::Basic(Want::Literal("zendesk-demo-user/token"), Want::Key),
        required_headers: &[],
        required_values: &[],
    },
    // https://developers.freshdesk.com/api/#authentication
    // (Basic with the API key as the user name and any password)
    DocProvider {
        id: "freshdesk",
        token: None,
        api_host: "freshdesk-demo-tenant.freshdesk.com",
        api_prefix: "/api/v2/",
        cred: ApiCred::Basic(Want::Key, Want::Any),
        required_headers: &[],
        required_values: &[],
    },
    // https://shopify.dev/docs/api/usage/authentication#getting-started-with-authenticated-access
    // and https://shopify.dev/docs/api/admin-rest#endpoints
    DocProvider {
        id: "shopify",
        token: None,
        api_host: "shopify-demo-tenant.myshopify.com",
        api_prefix: "/admin/api/",
        cred: ApiCred::StaticHeader("x-shopify-access-token"),
        required_headers: &[],
        required_values: &[],
    },
    // https://mailchimp.com/developer/marketing/docs/fundamentals/#api-structure
    // (the data centre, here us6, is in the host) and #authentication-methods
    // (Basic with any user name and the API key as the password)
    DocProvider {
        id: "mailchimp",
        token: None,
        api_host: "us6.api.mailchimp.com",
        api_prefix: "/3.0/",
        cred: ApiCred::Basic(Want::Any, Want::Key),
        required_headers: &[],
        required_values: &[],
    },
    // https://www.zoho.com/accounts/protocol/oauth/web-apps/access-token-expiry.html
    // and https://www.zoho.com/crm/developer/docs/api/v6/refresh.html (the US
    // data centre, the catalog's default) and .../oauth-overview.html
    // (`Authorization: Zoho-oauthtoken TOKEN`)
    DocProvider {
        id: "zoho",
        token: Some(TokenSpec {
            host: "accounts.zoho.com",
            path: "/oauth/v2/token",
            body: ReqBody::Form,
            delivery: Delivery::Body,
            fields: &[
                ("client_id", Want::ClientId),
                ("client_secret", Want::ClientSecret),
                ("grant_type", Want::Literal("refresh_token")),
                ("refresh_token", Want::RefreshToken),
            ],
            basic_client: false,
            rotates: false,
            reply: |t, _| {
                json!({
                    "access_token": t,
                    "api_domain": "https://www.zohoapis.com",
                    "token_type": "Bearer",
                    "expires_in": 3600
                })
            },
        }),
        api_host: "www.zohoapis.com",
        api_prefix: "/crm/",
        cred: ApiCred::Issued("Zoho-oauthtoken"),
        required_headers: &[],
        required_values: &[],
    },
    // https://support.exactonline.com/community/s/knowledge-base#All-All-DNO-Content-oauth-eol-oauth-devstep3
    // (refresh only; expires_in is a string; every refresh hands out a new
    // refresh token and voids the one used) for the Dutch host, the
    // catalog's default country
    DocProvider {
        id: "exact-online",
        token: Some(TokenSpec {
            host: "start.exactonline.nl",
            path: "/api/oauth2/token",
            body: ReqBody::Form,
            delivery: Delivery::Body,
            fields: &[
                ("grant_type", Want::Literal("refresh_token")),
                ("refresh_token", Want::RefreshToken),
                ("client_id", Want::ClientId),
                ("client_secret", Want::ClientSecret),
            ],
            basic_client: false,
            rotates: true,
            reply: |t, r| {
                json!({
                    "access_token": t,
                    "token_type": "bearer",
                    "expires_in": "600",
                    "refresh_token": r
                })
            },
        }),
        api_host: "start.exactonline.nl",
        api_prefix: "/api/v1/",
        cred: ApiCred::Issued("Bearer"),
        required_headers: &[],
        required_values: &[],
    },
    // https://developer.xero.com/documentation/guides/oauth2/auth-flow/#refreshing-access-and-refresh-tokens
    // (refresh only, client Basic, a new refresh token each time: Xero lets
    // the old one work for a short grace period, this server voids it at
    // once) and #call-the-api (the organisation in xero-tenant-id)
    DocProvider {
        id: "xero",
        token: Some(TokenSpec {
            host: "identity.xero.com",
            path: "/connect/token",
            body: ReqBody::Form,
            delivery: Delivery::Body,
            fields: &[
                ("grant_type", Want::Literal("refresh_token")),
                ("refresh_token", Want::RefreshToken),
            ],
            basic_client: true,
            rotates: true,
            reply: |t, r| {
                json!({
                    "access_token": t,
                    "expires_in": 1800,
                    "token_type": "Bearer",
                    "refresh_token": r,
                    "scope": "offline_access accounting.settings.read"
                })
            },
        }),
        api_host: "api.xero.com",
        api_prefix: "/api.xro/2.0/",
        cred: ApiCred::Issued("Bearer"),
        required_headers: &[],
        required_values: &[("xero-tenant-id", Want::Tenant)],
    },
    // https://docs.datadoghq.com/api/latest/authentication/ (the API key in
    // DD-API-KEY and, to read, the application key, here
    // `datadog-demo-client`, in DD-APPLICATION-KEY; the US1 site)
    DocProvider {
        id: "datadog",
        token: None,
        api_host: "api.datadoghq.com",
        api_prefix: "/api/",
        cred: ApiCred::StaticHeader("dd-api-key"),
        required_headers: &[],
        required_values: &[("dd-application-key", Want::ClientId)],
    },
    // https://docs.openstack.org/api-ref/identity/v3/#password-authentication-with-scoped-authorization
    // (a nested JSON body; 201 with the token in X-Subject-Token, its
    // expiry in the body) and #authentication-and-token-management (later
    // requests send X-Auth-Token). Self-hosted, here at
    // openstack.example.com/identity; the project is `ID-demo-tenant`.
    DocProvider {
        id: "openstack-keystone",
        token: Some(TokenSpec {
            host: "openstack.example.com",
            path: "/identity/v3/auth/tokens",
            body: ReqBody::Json(|a| {
                json!({"auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {"user": {
                            "name": a.user,
                            "domain": {"id": "default"},
                            "password": a.password
                        }}
                    },
                    "scope": {"project": {"name": a.tenant, "domain": {"id": "default"}}}
                }})
            }),
            delivery: Delivery::Header("X-Subject-Token"),
            fields: &[],
            basic_client: false,
            rotates: false,
            reply: |_, _| {
                json!({"token": {
                    "methods": ["password"],
                    "expires_at": rfc3339_after(3600),
                    "user": {
                        "id": "0000000000000000000000000000demo",
                        "name": "openstack-keystone-demo-user",
                        "domain": {"id": "default", "name": "Default"}
                    },
                    "project": {
                        "id": "0000000000000000000000000000prj1",
                        "name": "openstack-keystone-demo-tenant",
                        "domain": {"id": "default", "name": "Default"}
                    }
                }})
            },
        }),
        api_host: "openstack.example.com",
        api_prefix: "/identity/v3/",
        cred: ApiCred::IssuedHeader("x-auth-token"),
        required_headers: &[],
        required_values: &[],
    },
    // https://developer.atlassian.com/server/jira/platform/cookie-based-authentication/
    // (POST a JSON {username, password}; the reply sets JSESSIONID and
    // repeats it in session.name / session.value; later requests send the
    // cookie). Self-hosted, here at jira.example.com.
    DocProvider {
        id: "jira-datacenter",
        token: Some(TokenSpec {
            host: "jira.example.com",
            path: "/rest/auth/1/session",
            body: ReqBody::Json(|a| json!({"username": a.user, "password": a.password})),
            delivery: Delivery::Cookie("JSESSIONID"),
            fields: &[],
            basic_client: false,
            rotates: false,
            reply: |t, _| {
                json!({
                    "session": {"name": "JSESSIONID", "value": t},
                    "loginInfo": {"failedLoginCount": 0, "loginCount": 1}
                })
            },
        }),
        api_host: "jira.example.com",
        api_prefix: "/rest/",
        cred: ApiCred::IssuedCookie("JSESSIONID"),
        required_headers: &[],
        required_values: &[],
    },
    // https://dev.twitch.tv/docs/authentication/getting-tokens-oauth/#client-credentials-grant-flow
    DocProvider {
        id: "twitch",
        token: Some(TokenSpec {
            host: "id.twitch.tv",
            path: "/oauth2/token",
            body: ReqBody::Form,
            delivery: Delivery::Body,
            fields: &[
                ("client_id", Want::ClientId),
                ("client_secret", Want::ClientSecret),
                CC,
            ],
            basic_client: false,
            rotates: false,
            reply: |t, _| json!({"access_token": t, "expires_in": 5_011_271, "token_type": "bearer"}),
        }),
        api_host: "api.twitch.tv",
        api_prefix: "/helix/",
        cred: ApiCred::Issued("Bearer"),
        required_headers: &[],
        required_values: &[("client-id", Want::ClientId)],
    },
    // https://developers.notion.com/reference/authentication and /versioning
    DocProvider {
        id: "notion",
        token: None,
        api_host: "api.notion.com",
        api_prefix: "/v1/",
        cred: ApiCred::Static("Bearer"),
        required_headers: &[],
        required_values: &[("notion-version", Want::Literal("2022-06-28"))],
    },
    // https://developer.atlassian.com/cloud/trello/guides/rest-api/api-introduction/
    // (the API key is `trello-demo-client`, the token `trello-demo-key`)
    DocProvider {
        id: "trello",
        token: None,
        api_host: "api.trello.com",
        api_prefix: "/1/",
        cred: ApiCred::Query(&[("key", Want::ClientId), ("token", Want::Key)]),
        required_headers: &[],
        required_values: &[],
    },
];

/// The fake account of a documented provider (one naming convention for all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocAccount {
    /// `ID-demo-client`.
    pub client_id: String,
    /// `ID-demo-client-secret`.
    pub client_secret: String,
    /// `ID-demo-refresh-token`: the refresh token the token endpoint accepts
    /// (where refresh tokens rotate: the first one).
    pub refresh_token: String,
    /// `ID-demo-key`: the static API key or token the API accepts.
    pub key: String,
    /// `ID-demo-user`: the user name (or email) where the provider has one.
    pub user: String,
    /// `ID-demo-password`: the user's password.
    pub password: String,
    /// The account's tenant, subdomain, shop, realm or data centre, where a
    /// URL holds one: `ID-demo-tenant`, except where the documentation gives
    /// the value a form of its own (Mailchimp's data centre: `us6`).
    pub tenant: String,
    /// The host name of the account's API (for a provider whose host is per
    /// account, this account's: `okta-demo-tenant.okta.com`); empty for an
    /// id that is not documented here.
    pub host: String,
}

impl DocAccount {
    /// The account of provider `id`.
    pub fn of(id: &str) -> DocAccount {
        let tenant = match id {
            "mailchimp" => "us6".to_owned(),
            _ => format!("{id}-demo-tenant"),
        };
        DocAccount {
            client_id: format!("{id}-demo-client"),
            client_secret: format!("{id}-demo-client-secret"),
            refresh_token: format!("{id}-demo-refresh-token"),
            key: format!("{id}-demo-key"),
            user: format!("{id}-demo-user"),
            password: format!("{id}-demo-password"),
            tenant,
            host: PROVIDERS
                .iter()
                .find(|p| p.id == id)
                .map_or(String::new(), |p| p.api_host.to_owned()),
        }
    }
}

/// What one documented provider saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocStats {
    /// Token requests received (good or bad).
    pub token_requests: u32,
    /// Tokens issued.
    pub tokens_issued: u32,
    /// API requests whose credential was where the documentation says.
    pub api_accepted: u32,
    /// API requests rejected with 401.
    pub api_rejected: u32,
    /// Why each rejected request (token or API) was rejected, oldest first.
    pub rejections: Vec<String>,
}

#[derive(Default)]
struct DocState {
    issued: Mutex<HashMap<String, &'static str>>,
    /// The latest refresh token of each provider whose tokens rotate (absent:
    /// the account's first one).
    refresh: Mutex<HashMap<&'static str, String>>,
    stats: Mutex<HashMap<&'static str, DocStats>>,
    counter: AtomicU64,
}

impl DocState {
    fn with_stats(&self, id: &'static str, f: impl FnOnce(&mut DocStats)) {
        let mut all = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        f(all.entry(id).or_default());
    }

    fn reject(&self, id: &'static str, why: String) {
        self.with_stats(id, |s| s.rejections.push(why));
    }
}

/// A running documented-reply server (HTTPS on 127.0.0.1 only). Dropping it
/// stops it.
pub struct DocumentedServer {
    addr: SocketAddr,
    ca_pem: String,
    state: Arc<DocState>,
    shutdown: Option<watch::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for DocumentedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentedServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn hosts() -> Vec<&'static str> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for p in PROVIDERS {
        for h in p.token.map(|t| t.host).into_iter().chain([p.api_host]) {
            if seen.insert(h) {
                out.push(h);
            }
        }
    }
    out
}

impl DocumentedServer {
    /// Starts the server on its own thread and runtime, on a free port of
    /// 127.0.0.1, with a fresh CA whose certificate covers every documented
    /// host name.
    ///
    /// # Errors
    /// The port could not be bound or the certificate not generated.
    pub fn start() -> io::Result<DocumentedServer> {
        let mut names: Vec<String> = hosts().into_iter().map(str::to_owned).collect();
        names.push("localhost".to_owned());
        let material = tls::generate_for(names)?;
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let state = Arc::new(DocState::default());
        let (tx, rx) = watch::channel(());
        let st = state.clone();
        let acceptor = TlsAcceptor::from(material.server_config);
        let thread = std::thread::Builder::new()
            .name("tokenauth-documented".to_owned())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(listener) = TcpListener::from_std(std_listener) {
                        accept_loop(listener, acceptor, st, rx).await;
                    }
                });
            })?;
        Ok(DocumentedServer {
            addr,
            ca_pem: material.ca_pem,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The listener's address (HTTPS).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM of the CA that signed the server certificate.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_pem
    }

    /// `(real host name, listener address)` for every documented host: give
    /// them to `reqwest::ClientBuilder::resolve` or `tokenauth --resolve`.
    pub fn host_overrides(&self) -> Vec<(&'static str, SocketAddr)> {
        hosts().into_iter().map(|h| (h, self.addr)).collect()
    }

    /// The ids of the documented providers.
    pub fn providers(&self) -> Vec<&'static str> {
        PROVIDERS.iter().map(|p| p.id).collect()
    }

    /// What provider `id` saw so far.
    pub fn stats(&self, id: &str) -> DocStats {
        let all = self
            .state
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.get(id).cloned().unwrap_or_default()
    }

    /// The refresh token provider `id`'s token endpoint accepts now: the
    /// account's, or for a provider whose refresh tokens rotate, the last
    /// one it handed out.
    pub fn refresh_token(&self, id: &str) -> String {
        self.state
            .refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
            .unwrap_or_else(|| DocAccount::of(id).refresh_token)
    }
}

impl Drop for DocumentedServer {
    fn drop(&mut self) {
        self.shutdown.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<DocState>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            if let Ok(tls) = acceptor.accept(stream).await {
                let svc = service_fn(move |req| handle(state.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            }
        });
    }
}

type Resp = Response<Full<Bytes>>;

/// A JSON reply (also the jwt-bearer server's).
pub(crate) fn reply(status: StatusCode, body: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(
    state: Arc<DocState>,
    req: Request<Incoming>,
) -> Result<Resp, std::convert::Infallible> {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .map_or(h, |(n, _)| n)
                .to_ascii_lowercase()
        })
        .or_else(|| req.uri().host().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let path = req.uri().path().to_owned();
    for p in PROVIDERS {
        // A path that is both (Jira's session: POST logs in, GET says who
        // is logged in) is the token endpoint for POST only.
        let also_api = p.api_host == host && path.starts_with(p.api_prefix);
        if let Some(t) = p.token
            && t.host == host
            && t.path == path
            && (req.method() == Method::POST || !also_api)
        {
            return Ok(token(&state, p, t, req).await);
        }
    }
    for p in PROVIDERS {
        if p.api_host == host && path.starts_with(p.api_prefix) {
            return Ok(api(&state, p, req.headers(), req.uri().query()));
        }
    }
    Ok(reply(
        StatusCode::NOT_FOUND,
        &json!({"error": format!("no documented endpoint at https://{host}{path}")}),
    ))
}

/// The value `want` stands for, `None` for [`Want::Any`].
fn want_value(state: &DocState, id: &str, want: Want, account: &DocAccount) -> Option<String> {
    Some(match want {
        Want::Literal(v) => v.to_owned(),
        Want::ClientId => account.client_id.clone(),
        Want::ClientSecret => account.client_secret.clone(),
        Want::RefreshToken => state
            .refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
            .unwrap_or_else(|| account.refresh_token.clone()),
        Want::Key => account.key.clone(),
        Want::User => account.user.clone(),
        Want::Password => account.password.clone(),
        Want::Tenant => account.tenant.clone(),
        Want::Any => return None,
    })
}

/// Whether `got` is what `want` stands for.
fn wanted(state: &DocState, id: &str, want: Want, account: &DocAccount, got: &str) -> bool {
    want_value(state, id, want, account).is_none_or(|v| v == got)
}

async fn token(state: &DocState, p: &DocProvider, t: TokenSpec, req: Request<Incoming>) -> Resp {
    state.with_stats(p.id, |s| s.token_requests += 1);
    let account = DocAccount::of(p.id);
    let (parts, body) = req.into_parts();
    let bad = |status: StatusCode, error: &str, why: String| {
        state.reject(p.id, format!("token: {why}"));
        reply(status, &json!({"error": error, "error_description": why}))
    };
    if parts.method != Method::POST {
        return bad(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            format!("method {} instead of POST", parts.method),
        );
    }
    let ctype = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (wanted_type, what) = match t.body {
        ReqBody::Form => ("application/x-www-form-urlencoded", "a form"),
        ReqBody::Json(_) => ("application/json", "JSON"),
    };
    if !ctype.to_ascii_lowercase().starts_with(wanted_type) {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("content type {ctype:?} instead of {what}"),
        );
    }
    let Ok(body) = Limited::new(body, 64 * 1024).collect().await else {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unreadable body".to_owned(),
        );
    };
    let body = body.to_bytes();
    if let ReqBody::Json(expected) = t.body {
        let why = match serde_json::from_slice::<Value>(&body) {
            Ok(got) => json_difference(&expected(&account), &got, String::new()),
            Err(e) => Some(format!("a body that is not JSON ({e})")),
        };
        if let Some(why) = why {
            return bad(StatusCode::BAD_REQUEST, "invalid_request", why);
        }
    }
    let form = match t.body {
        ReqBody::Form => parse_form(&body),
        ReqBody::Json(_) => Vec::new(),
    };
    let basic = basic_credentials(&parts.headers);
    if t.basic_client {
        match &basic {
            Some((u, pw)) if *u == account.client_id && *pw == account.client_secret => {}
            Some(_) => {
                return bad(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "wrong client id or secret in the Basic header".to_owned(),
                );
            }
            None => {
                return bad(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "no Basic client authentication".to_owned(),
                );
            }
        }
    } else if parts.headers.contains_key(AUTHORIZATION) {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "an Authorization header the documentation does not ask for".to_owned(),
        );
    }
    for (name, want) in t.fields {
        let got = form.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        match got {
            Some(v) if wanted(state, p.id, *want, &account, v) => {}
            other => {
                let (status, error) = match (*name, want) {
                    ("grant_type", _) => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
                    (_, Want::ClientId | Want::ClientSecret) => {
                        (StatusCode::UNAUTHORIZED, "invalid_client")
                    }
                    _ => (StatusCode::BAD_REQUEST, "invalid_grant"),
                };
                let what = if other.is_some() {
                    "has the wrong value"
                } else {
                    "is missing"
                };
                return bad(status, error, format!("form field {name} {what}"));
            }
        }
    }
    let n = state.counter.fetch_add(1, Ordering::Relaxed);
    let refresh = if t.rotates {
        // Compare and replace under one lock: of two requests with the same
        // refresh token, one gets the new pair and the other invalid_grant.
        let used = form
            .iter()
            .find(|(k, _)| k == "refresh_token")
            .map(|(_, v)| v);
        let mut all = state.refresh.lock().unwrap_or_else(PoisonError::into_inner);
        let current = all.get(p.id).unwrap_or(&account.refresh_token);
        if used != Some(current) {
            drop(all);
            return bad(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "a refresh token another request has just used".to_owned(),
            );
        }
        let next = format!("{}-rt-{n}-{:016x}", p.id, fastrand::u64(..));
        all.insert(p.id, next.clone());
        next
    } else {
        account.refresh_token.clone()
    };
    let token = format!("{}-at-{n}-{:016x}", p.id, fastrand::u64(..));
    state
        .issued
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(token.clone(), p.id);
    state.with_stats(p.id, |s| s.tokens_issued += 1);
    let body = (t.reply)(&token, &refresh);
    match t.delivery {
        Delivery::Body => reply(StatusCode::OK, &body),
        Delivery::Header(name) => {
            let mut r = reply(StatusCode::CREATED, &body);
            if let Ok(v) = http::HeaderValue::from_str(&token) {
                r.headers_mut().insert(name, v);
            }
            r
        }
        Delivery::Cookie(name) => {
            let mut r = reply(StatusCode::OK, &body);
            if let Ok(v) =
                http::HeaderValue::from_str(&format!("{name}={token}; Path=/; Secure; HttpOnly"))
            {
                r.headers_mut().insert(http::header::SET_COOKIE, v);
            }
            r
        }
    }
}

/// Where `got` differs from `expected` first (a JSON pointer and what is
/// wrong there), or `None` when they are equal.
fn json_difference(expected: &Value, got: &Value, at: String) -> Option<String> {
    match (expected, got) {
        (Value::Object(e), Value::Object(g)) => {
            for (k, ev) in e {
                let here = format!("{at}/{k}");
                match g.get(k) {
                    Some(gv) => {
                        if let Some(why) = json_difference(ev, gv, here) {
                            return Some(why);
                        }
                    }
                    None => return Some(format!("JSON body: {here} is missing")),
                }
            }
            g.keys()
                .find(|k| !e.contains_key(*k))
                .map(|k| format!("JSON body: {at}/{k} is not documented"))
        }
        (e, g) if e == g => None,
        _ => Some(format!(
            "JSON body: {} has the wrong value or type",
            if at.is_empty() { "/" } else { &at }
        )),
    }
}

/// `now + secs` as RFC 3339 in UTC with microseconds, as Keystone writes
/// its `expires_at`.
fn rfc3339_after(secs: u64) -> String {
    rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + secs,
    )
}

/// Seconds since the Unix epoch as RFC 3339 in UTC, with microseconds.
fn rfc3339(t: u64) -> String {
    let (days, rem) = (t / 86_400, t % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn api(state: &DocState, p: &DocProvider, headers: &HeaderMap, query: Option<&str>) -> Resp {
    let account = DocAccount::of(p.id);
    let auth = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    // The credential after `scheme ` in Authorization.
    let after = |scheme: &str| {
        let (s, rest) = auth?.split_once(' ')?;
        s.eq_ignore_ascii_case(scheme).then_some(rest)
    };
    let issued = |t: &str| {
        state
            .issued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(t)
            == Some(&p.id)
    };
    let problem = match p.cred {
        ApiCred::Issued(scheme) => match after(scheme) {
            Some(t) if issued(t) => None,
            Some(_) => Some(format!("a {scheme} token this provider never issued")),
            None => Some(format!("no {scheme} token in Authorization")),
        },
        ApiCred::Static(scheme) => match after(scheme) {
            Some(t) if t == account.key => None,
            Some(_) => Some(format!("a wrong {scheme} token")),
            None => Some(format!("no {scheme} token in Authorization")),
        },
        ApiCred::IssuedHeader(name) => match headers.get(name).and_then(|v| v.to_str().ok()) {
            Some(t) if issued(t) => None,
            Some(_) => Some(format!("a {name} this provider never issued")),
            None => Some(format!("no {name} header")),
        },
        ApiCred::IssuedCookie(name) => {
            let cookie = headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .find_map(|c| {
                    let (k, v) = c.trim().split_once('=')?;
                    (k == name).then_some(v)
                });
            match cookie {
                Some(t) if issued(t) => None,
                Some(_) => Some(format!("a {name} cookie this provider never issued")),
                None => Some(format!("no {name} cookie")),
            }
        }
        ApiCred::StaticHeader(name) => match headers.get(name).and_then(|v| v.to_str().ok()) {
            Some(v) if v == account.key => None,
            Some(_) => Some(format!("a wrong value in {name}")),
            None => Some(format!("no {name} header")),
        },
        ApiCred::Basic(user, password) => match basic_raw(headers) {
            Some((u, pw))
                if wanted(state, p.id, user, &account, &u)
                    && wanted(state, p.id, password, &account, &pw) =>
            {
                None
            }
            Some(_) => Some("wrong Basic credentials".to_owned()),
            None => Some("no Basic credentials".to_owned()),
        },
        ApiCred::Query(params) => {
            let pairs = parse_form(query.unwrap_or("").as_bytes());
            params
                .iter()
                .find_map(|(name, want)| match pairs.iter().find(|(k, _)| k == name) {
                    Some((_, v)) if wanted(state, p.id, *want, &account, v) => None,
                    Some(_) => Some(format!("a wrong value in query parameter {name}")),
                    None => Some(format!("no query parameter {name}")),
                })
        }
    };
    let problem = problem.or_else(|| {
        p.required_headers
            .iter()
            .find(|h| !headers.contains_key(**h))
            .map(|h| format!("no {h} header, which the documentation requires"))
    });
    let problem = problem.or_else(|| {
        p.required_values.iter().find_map(|(name, want)| {
            match headers.get(*name).and_then(|v| v.to_str().ok()) {
                Some(v) if wanted(state, p.id, *want, &account, v) => None,
                Some(_) => Some(format!("a wrong value in {name}")),
                None => Some(format!(
                    "no {name} header, which the documentation requires"
                )),
            }
        })
    });
    match problem {
        None => {
            state.with_stats(p.id, |s| s.api_accepted += 1);
            reply(StatusCode::OK, &json!({"provider": p.id, "ok": true}))
        }
        Some(why) => {
            state.with_stats(p.id, |s| s.api_rejected += 1);
            state.reject(p.id, format!("api: {why}"));
            reply(StatusCode::UNAUTHORIZED, &json!({"error": why}))
        }
    }
}

/// HTTP Basic user and password as sent (the user name ends at the first
/// `:`, RFC 7617).
fn basic_raw(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// OAuth client credentials in HTTP Basic: each part form-decoded, as RFC
/// 6749 §2.3.1 says.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let (u, p) = basic_raw(headers)?;
    Some((percent_decode(u.as_bytes()), percent_decode(p.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(percent_decode(b"a+b%3Ac"), "a b:c");
        assert_eq!(percent_decode(b"%"), "%");
        assert_eq!(percent_decode(b"a%4"), "a%4");
        assert_eq!(percent_decode(b"%41"), "A");
        assert_eq!(
            parse_form(b"grant_type=client_credentials&x="),
            vec![
                ("grant_type".to_owned(), "client_credentials".to_owned()),
                ("x".to_owned(), String::new())
            ]
        );
    }

    #[test]
    fn json_differences_name_the_place() {
        let want = json!({"a": {"b": [1, 2], "c": "x"}});
        assert_eq!(json_difference(&want, &want.clone(), String::new()), None);
        assert_eq!(
            json_difference(&want, &json!({"a": {"b": [1, 2]}}), String::new()).as_deref(),
            Some("JSON body: /a/c is missing")
        );
        assert_eq!(
            json_difference(&want, &json!({"a": {"b": [1], "c": "x"}}), String::new()).as_deref(),
            Some("JSON body: /a/b has the wrong value or type")
        );
        assert_eq!(
            json_difference(
                &want,
                &json!({"a": {"b": [1, 2], "c": "x"}, "d": 1}),
                String::new()
            )
            .as_deref(),
            Some("JSON body: /d is not documented")
        );
    }

    #[test]
    fn expiry_dates_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(1_764_662_400), "2025-12-02T08:00:00.000000Z");
        assert_eq!(rfc3339(951_868_799), "2000-02-29T23:59:59.000000Z");
        let d = rfc3339_after(0);
        assert_eq!(d.len(), "2026-12-02T08:00:00.000000Z".len(), "{d}");
        assert!(d.starts_with("20") && d.ends_with(".000000Z"), "{d}");
    }

    #[test]
    fn every_host_is_served_once() {
        let h = hosts();
        let unique: HashSet<_> = h.iter().collect();
        assert_eq!(h.len(), unique.len());
        assert!(h.contains(&"accounts.spotify.com") && h.contains(&"api.spotify.com"));
    }
}
