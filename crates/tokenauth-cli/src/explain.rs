//! `tokenauth explain`: the exact token request and the attached credential,
//! secrets masked, without sending anything.

use tokenauth_core::RequestKind;
use tokenauth_core::preview::{preview_injection, preview_token_request};

use crate::common::open;
use crate::{ConnectionArgs, Global, Outcome};

pub(crate) fn run(g: &Global, id: &str, args: &ConnectionArgs) -> Outcome {
    let (_, p, conn) = match open(g, id, args) {
        Ok(opened) => opened,
        Err(o) => return o,
    };
    println!("provider {} ({})", p.id, p.name);
    // A prefix with placeholders as this connection renders it (and as
    // written); a `*` prefix as written, bound by the token reply.
    let prefixes: Vec<String> = p
        .api
        .iter()
        .map(|prefix| {
            if prefix.is_literal() {
                return prefix.to_string();
            }
            if prefix.is_wildcard() {
                return format!("{prefix} (one host under it: the token reply's api_base)");
            }
            match conn.render_url(&p, prefix) {
                Ok(url) => format!("{url} (from {prefix})"),
                Err(e) => format!("{prefix} (not renderable for this connection: {e})"),
            }
        })
        .collect();
    println!("credential is sent only to: {}", prefixes.join(", "));
    println!();
    println!("inputs:");
    for input in &p.inputs {
        let source = source(input);
        let state = if conn.has_input(&input.name) {
            "set"
        } else if input.default.is_some() {
            "not set, default used"
        } else {
            "NOT SET"
        };
        println!(
            "  {:<14} {:<28} {}{}",
            input.name,
            source,
            state,
            if input.secret { ", secret" } else { "" }
        );
    }
    println!();
    match preview_token_request(&p, &conn, RequestKind::Login) {
        Some(login) => {
            println!(
                "login request (timeout {}):",
                humantime::format_duration(p.login.as_ref().map(|l| l.timeout).unwrap_or_default())
            );
            print_indented(&login.to_string());
        }
        None if p.refresh.is_some() => println!(
            "no login: refresh only. Every token comes from the refresh request below, with the connection's refresh token from the store (--store DIR); without one there is no token, and `tokenauth token` says how to add one"
        ),
        None => println!("no login: static credentials, nothing is fetched"),
    }
    if let (Some(refresh), Some(r)) = (
        preview_token_request(&p, &conn, RequestKind::Refresh),
        p.refresh.as_ref(),
    ) {
        println!();
        println!(
            "refresh request ({}, timeout {}{}):",
            if p.login.is_some() {
                "when a refresh token is held"
            } else {
                "every renewal"
            },
            humantime::format_duration(r.request.timeout),
            if r.rotate {
                "; the reply's new refresh token replaces the old one"
            } else {
                ""
            }
        );
        print_indented(&refresh.to_string());
    }
    if let (Some(device), Some(d)) = (
        preview_token_request(&p, &conn, RequestKind::Device),
        p.device.as_ref(),
    ) {
        println!();
        println!(
            "device authorization request (`tokenauth login {} --device`, timeout {}; then polls the {} url with grant_type=urn:ietf:params:oauth:grant-type:device_code):",
            p.id,
            humantime::format_duration(d.request.timeout),
            if p.login.is_some() {
                "login"
            } else {
                "refresh"
            }
        );
        print_indented(&device.to_string());
    }
    // Where the tokens are in the reply, when not all in the JSON body.
    if p.fetches_tokens() && p.response.sources().any(|(_, s)| !s.reads_body()) {
        println!();
        println!("read from the token reply:");
        for (key, source) in p.response.sources() {
            let place = match source {
                tokenauth_core::config::TokenSource::Pointer(ptr) => {
                    format!("body {}", ptr.as_str())
                }
                other => other.to_string(),
            };
            println!("  {key:<14} {place}");
        }
        if !p.response.reads_body() {
            println!("  (the body is not read: it may be HTML or empty)");
        }
    }
    println!();
    println!("attached to each API request:");
    for (name, value) in preview_injection(&p, &conn) {
        if let Some(query) = name.strip_prefix('?') {
            println!("  query parameter {query}={value}");
        } else {
            println!("  {name}: {value}");
        }
    }
    println!();
    println!("expiry: {}", expiry(&p));
    Outcome::Ok
}

fn print_indented(text: &str) {
    for line in text.lines() {
        if line.is_empty() {
            println!();
        } else {
            println!("  {line}");
        }
    }
}

/// Where an input's value comes from when the connection does not set it.
/// A default is shown as it is: secret inputs cannot have one (the loader
/// refuses it), and a secret one would not be printed anyway.
fn source(input: &tokenauth_core::config::Input) -> String {
    let default = input.default.as_deref().map(|d| {
        if input.secret {
            "default [secret]".to_owned()
        } else {
            format!("default {d:?}")
        }
    });
    match (&input.env, default) {
        (Some(env), Some(default)) => format!("${env}, else {default}"),
        (Some(env), None) => format!("${env}"),
        (None, Some(default)) => default,
        (None, None) => "supplied per connection".to_owned(),
    }
}

fn expiry(p: &tokenauth_core::Provider) -> String {
    if !p.fetches_tokens() {
        return "never (static credentials)".to_owned();
    }
    let r = &p.response;
    let mut sources = Vec::new();
    if let Some(at) = &r.expires_at {
        sources.push(format!("reply {at} ({:?})", r.expires_at_format));
    }
    if let Some(i) = &r.expires_in {
        sources.push(format!("reply {i} ({})", r.expires_in_unit.as_str()));
    }
    if p.expiry.jwt_exp {
        sources.push("the JWT exp claim".to_owned());
    }
    if let Some(ttl) = p.expiry.ttl {
        sources.push(format!("ttl {}", humantime::format_duration(ttl)));
    }
    let skew = match p.expiry.skew {
        tokenauth_core::config::Skew::Percent(n) => format!("{n}% of the lifetime"),
        tokenauth_core::config::Skew::Fixed(d) => humantime::format_duration(d).to_string(),
    };
    format!(
        "{}; renewed in the background {skew} before it ends",
        sources.join(", else ")
    )
}
