//! `tokenauth check`: validate a description and say exactly what is wrong.

use std::path::Path;

use tokenauth_core::config::{LoadError, Providers};

use crate::Outcome;

pub(crate) fn run(path: &Path, json: bool) -> Outcome {
    let result = Providers::from_path(path);
    if json {
        let value = match &result {
            Ok(p) => serde_json::json!({
                "file": path.display().to_string(),
                "valid": true,
                "providers": p.ids().collect::<Vec<_>>(),
                "errors": [],
                "error_count": 0,
                "errors_omitted": 0,
            }),
            Err(e) => serde_json::json!({
                "file": path.display().to_string(),
                "valid": false,
                "providers": [],
                "errors": match e {
                    LoadError::Io { .. } => serde_json::json!([{ "file": path.display().to_string(), "message": e.to_string() }]),
                    _ => serde_json::to_value(e.diagnostics()).unwrap_or_default(),
                },
                // `errors` lists at most the first 200 problems; these say
                // how many there were in all and how many are not listed.
                "error_count": match e {
                    LoadError::Invalid(errors) => errors.total(),
                    _ => 1,
                },
                "errors_omitted": e.omitted(),
            }),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return if result.is_ok() {
            Outcome::Ok
        } else {
            Outcome::InvalidInput
        };
    }
    match result {
        Ok(providers) => {
            println!(
                "{}: valid, {} provider{}",
                path.display(),
                providers.len(),
                if providers.len() == 1 { "" } else { "s" }
            );
            for p in &providers {
                println!("  {:<12} {}", p.id, summary(p));
            }
            Outcome::Ok
        }
        Err(e) => {
            eprint!("{e}");
            if matches!(e, LoadError::Io { .. }) {
                eprintln!();
            }
            Outcome::InvalidInput
        }
    }
}

/// One line saying how the provider authenticates.
fn summary(p: &tokenauth_core::Provider) -> String {
    let how = match (&p.login, &p.refresh) {
        (Some(l), Some(r)) => format!(
            "login {} {}, refresh{}",
            l.method,
            l.url,
            if r.rotate { " (rotating)" } else { "" }
        ),
        (Some(l), None) => format!("login {} {}", l.method, l.url),
        (None, Some(r)) => format!(
            "refresh-only: renews with a stored refresh token at {} {}{}; no login",
            r.request.method,
            r.request.url,
            if r.rotate { " (rotating)" } else { "" }
        ),
        (None, None) => "static credentials".to_owned(),
    };
    let inject = &p.inject;
    let inject: Vec<String> = (inject
        .header
        .iter()
        .map(|(name, _)| format!("header {name}")))
    .chain(inject.basic.iter().map(|_| "basic auth".to_owned()))
    .chain(
        inject
            .headers
            .iter()
            .map(|(name, _)| format!("header {name}")),
    )
    .chain(
        inject
            .query
            .iter()
            .map(|(name, _)| format!("query ?{name}=")),
    )
    .collect();
    let inject = inject.join(", ");
    format!(
        "{how}; injects {inject}; api {}",
        p.api
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )
}
