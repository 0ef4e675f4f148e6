//! The impersonated hosts and providers, and how a request is routed to one.

use serde::{Deserialize, Serialize};

/// Real host name of the REOBtimaal API and its token endpoint (`POST /api/Token`).
pub const REOBTIMAAL_HOST: &str = "api.reobtimaal-diensten.nl";
/// Real host name of the 2BA token endpoint (`POST /OAuth/Token`).
pub const TWOBA_AUTHORIZE_HOST: &str = "authorize.2ba.nl";
/// Real host name of the 2BA API (`/1/json/...`).
pub const TWOBA_API_HOST: &str = "api.2ba.nl";
/// Real host name of the BRO bronhouderportaal API (`/api/v2/...`).
pub const BRO_HOST: &str = "www.bronhouderportaal-bro.nl";

/// One of the four real hosts the emulator impersonates.
///
/// A request is routed by its `Host` header when that names one of these
/// hosts (the TLS listener with [`Emulator::host_overrides`](crate::Emulator::host_overrides)),
/// and otherwise by the first path segment ([`Host::path_prefix`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// `api.reobtimaal-diensten.nl`, path prefix `/reobtimaal`.
    Reobtimaal,
    /// `authorize.2ba.nl`, path prefix `/2ba-authorize`.
    TwobaAuthorize,
    /// `api.2ba.nl`, path prefix `/2ba`.
    Twoba,
    /// `www.bronhouderportaal-bro.nl`, path prefix `/bro`.
    Bro,
}

impl Host {
    /// All four hosts.
    pub const ALL: [Host; 4] = [
        Host::Reobtimaal,
        Host::TwobaAuthorize,
        Host::Twoba,
        Host::Bro,
    ];

    /// The real host name, e.g. `"api.2ba.nl"`.
    pub const fn hostname(self) -> &'static str {
        match self {
            Host::Reobtimaal => REOBTIMAAL_HOST,
            Host::TwobaAuthorize => TWOBA_AUTHORIZE_HOST,
            Host::Twoba => TWOBA_API_HOST,
            Host::Bro => BRO_HOST,
        }
    }

    /// The path prefix that selects this host on a plain `127.0.0.1:PORT`
    /// address, e.g. `"/2ba-authorize"`.
    pub const fn path_prefix(self) -> &'static str {
        match self {
            Host::Reobtimaal => "/reobtimaal",
            Host::TwobaAuthorize => "/2ba-authorize",
            Host::Twoba => "/2ba",
            Host::Bro => "/bro",
        }
    }

    /// The provider this host belongs to.
    pub const fn provider(self) -> Provider {
        match self {
            Host::Reobtimaal => Provider::Reobtimaal,
            Host::TwobaAuthorize | Host::Twoba => Provider::Twoba,
            Host::Bro => Provider::Bro,
        }
    }

    /// The host with this real name (ASCII case-insensitive, no port), if any.
    pub fn from_hostname(name: &str) -> Option<Host> {
        Host::ALL
            .into_iter()
            .find(|h| h.hostname().eq_ignore_ascii_case(name))
    }
}

/// One of the three emulated providers: the unit of stats, faults and tokens.
///
/// Serialized as `"reobtimaal"`, `"twoba"` and `"bro"` (`"2ba"` is accepted
/// when deserializing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// REOBtimaal: password grant with `grant-type`/`Password`, no refresh.
    Reobtimaal,
    /// 2BA: OAuth2 password and rotating refresh-token grants.
    #[serde(alias = "2ba")]
    Twoba,
    /// BRO bronhouderportaal: static Basic credentials, no token endpoint.
    Bro,
}

impl Provider {
    /// All three providers.
    pub const ALL: [Provider; 3] = [Provider::Reobtimaal, Provider::Twoba, Provider::Bro];

    /// The provider's name as used in JSON: `"reobtimaal"`, `"twoba"`, `"bro"`.
    pub const fn name(self) -> &'static str {
        match self {
            Provider::Reobtimaal => "reobtimaal",
            Provider::Twoba => "twoba",
            Provider::Bro => "bro",
        }
    }

    pub(crate) const fn index(self) -> usize {
        match self {
            Provider::Reobtimaal => 0,
            Provider::Twoba => 1,
            Provider::Bro => 2,
        }
    }
}

/// Splits a request into (host, path below the host) by `Host` header or
/// path prefix. `path` is the URI path without query.
pub(crate) fn route<'a>(host_header: Option<&str>, path: &'a str) -> Option<(Host, &'a str)> {
    if let Some(h) = host_header.and_then(|v| Host::from_hostname(strip_port(v))) {
        return Some((h, path));
    }
    for h in Host::ALL {
        let prefix = h.path_prefix();
        if let Some(rest) = path.strip_prefix(prefix) {
            if rest.is_empty() {
                return Some((h, "/"));
            }
            if rest.starts_with('/') {
                return Some((h, rest));
            }
        }
    }
    None
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host;
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_host_then_prefix() {
        assert_eq!(
            route(Some("api.2ba.nl:443"), "/1/json/x"),
            Some((Host::Twoba, "/1/json/x"))
        );
        assert_eq!(
            route(Some("API.2BA.NL"), "/1/json/x"),
            Some((Host::Twoba, "/1/json/x"))
        );
        assert_eq!(
            route(Some("127.0.0.1:9"), "/2ba/1/json/x"),
            Some((Host::Twoba, "/1/json/x"))
        );
        assert_eq!(
            route(Some("127.0.0.1:9"), "/2ba-authorize/OAuth/Token"),
            Some((Host::TwobaAuthorize, "/OAuth/Token"))
        );
        assert_eq!(
            route(None, "/reobtimaal/api/Token"),
            Some((Host::Reobtimaal, "/api/Token"))
        );
        assert_eq!(route(None, "/2bax/1/json"), None);
        assert_eq!(route(None, "/"), None);
    }
}
