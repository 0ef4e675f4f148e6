//! `tokenauth test`: prove a description works, one step at a time, and say
//! clearly which step failed and why.

use tokenauth_core::RequestKind;
use tokenauth_core::acquire::preview_injection;

use crate::common::{classify, open, when, with_spinner};
use crate::{ConnectionArgs, Global, Outcome};

struct Steps {
    total: usize,
    n: usize,
}

impl Steps {
    fn ok(&mut self, name: &str, detail: impl AsRef<str>) {
        self.n += 1;
        println!(
            "[{}/{}] {name:<7} ok      {}",
            self.n,
            self.total,
            detail.as_ref()
        );
    }

    fn skip(&mut self, name: &str, detail: impl AsRef<str>) {
        self.n += 1;
        println!(
            "[{}/{}] {name:<7} skipped {}",
            self.n,
            self.total,
            detail.as_ref()
        );
    }

    fn fail(&mut self, name: &str, detail: impl AsRef<str>) {
        self.n += 1;
        println!(
            "[{}/{}] {name:<7} FAILED  {}",
            self.n,
            self.total,
            detail.as_ref()
        );
    }
}

pub(crate) async fn run(g: &Global, id: &str, args: &ConnectionArgs) -> Outcome {
    let (providers, p, conn) = match open(g, id, args) {
        Ok(opened) => opened,
        Err(o) => return o,
    };
    let client = match g.client_builder().and_then(|b| {
        b.redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                eprintln!("error: cannot build the HTTP client: {e}");
                Outcome::InvalidInput
            })
    }) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let auth = match g.engine(providers) {
        Ok(a) => a,
        Err(o) => return o,
    };
    println!("testing {} ({})", p.id, p.name);
    let mut steps = Steps { total: 4, n: 0 };

    // 1. inputs
    let missing: Vec<String> = p
        .inputs
        .iter()
        .filter(|i| !conn.has_input(&i.name) && i.default.is_none())
        .map(|i| match &i.env {
            Some(env) => format!("{} (set ${env})", i.name),
            None => format!("{} (pass --input {}=...)", i.name, i.name),
        })
        .collect();
    if !missing.is_empty() {
        steps.fail("inputs", format!("missing: {}", missing.join(", ")));
        println!("result: {} cannot be tested until its inputs are set", p.id);
        return Outcome::InvalidInput;
    }
    let names: Vec<String> = p
        .inputs
        .iter()
        .map(|i| {
            if i.secret {
                format!("{} (secret)", i.name)
            } else {
                i.name.clone()
            }
        })
        .collect();
    steps.ok("inputs", names.join(", "));

    // 2. login
    let credential = match with_spinner(
        format!("{}: logging in…", p.id),
        auth.credential(&p.id, Some(&conn)),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            let step = if p.login.is_some() { "login" } else { "inject" };
            steps.fail(step, e.to_string());
            println!("result: {} does not work: the {step} step failed", p.id);
            return classify(&e);
        }
    };
    match &p.login {
        Some(login) => {
            let kind = auth.stats();
            let how = if kind.refreshes > 0 {
                RequestKind::Refresh
            } else {
                RequestKind::Login
            };
            let expiry = credential.expires_at().map_or_else(
                || "no expiry".to_owned(),
                |t| format!("expires {}", when(t, auth.clock().now())),
            );
            steps.ok(
                "login",
                format!("{} {} ({how}) -> token, {expiry}", login.method, login.url),
            );
        }
        None => steps.skip("login", "static credentials: nothing to fetch"),
    }

    // 3. inject
    let (name, value) = preview_injection(&p, &conn);
    steps.ok("inject", format!("{name}: {value}"));

    // 4. the [test] request
    let Some(test) = &p.test else {
        steps.skip(
            "test",
            format!("no [providers.{}.test] request in the description", p.id),
        );
        println!(
            "result: {} logs in; add a [test] request to prove the API accepts the credential",
            p.id
        );
        return Outcome::Ok;
    };
    let mut request = client.request(test.method.clone(), test.url.clone());
    for (name, t) in &test.headers {
        match conn.render(&p, t) {
            Ok(value) => request = request.header(name.clone(), value),
            Err(e) => {
                steps.fail("test", format!("header {name}: {e}"));
                return classify(&e);
            }
        }
    }
    if let Some(body) = &test.body {
        request = request.body(body.clone());
    }
    let mut request = match request.build() {
        Ok(r) => r,
        Err(e) => {
            steps.fail("test", format!("cannot build the request: {e}"));
            return Outcome::InvalidInput;
        }
    };
    credential.apply_to_headers(request.headers_mut());
    credential.apply_to_url(request.url_mut());
    let label = format!("{} {}", test.method, test.url);
    match with_spinner(format!("{}: {label}…", p.id), client.execute(request)).await {
        Ok(resp) if test.expect_status.contains(&resp.status().as_u16()) => {
            steps.ok("test", format!("{label} -> {}", resp.status()));
            println!("result: {} works", p.id);
            Outcome::Ok
        }
        Ok(resp) => {
            let status = resp.status();
            let hint = match status.as_u16() {
                401 => {
                    ": the API rejected the credential (wrong inject header or scheme, a revoked token, or an account without API access)"
                }
                403 => {
                    ": the credential is valid but this account has no right to this part of the API"
                }
                404 => ": the test URL does not exist; check [test] url",
                _ => "",
            };
            steps.fail(
                "test",
                format!(
                    "{label} -> {status}, expected {:?}{hint}",
                    test.expect_status
                ),
            );
            println!("result: {} does not work: the test request failed", p.id);
            Outcome::AuthFailure
        }
        Err(e) => {
            steps.fail("test", format!("{label}: {e}"));
            println!("result: {} does not work: the test request failed", p.id);
            Outcome::AuthFailure
        }
    }
}
