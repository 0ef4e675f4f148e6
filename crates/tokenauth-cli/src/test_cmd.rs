//! `tokenauth test`: prove a description works, one step at a time, and say
//! clearly which step failed and why.

use tokenauth_core::preview::preview_injection;
use tokenauth_core::{Connection, Error, Injection, Provider, RequestKind};
use tokenauth_reqwest::ClientBuilderExt as _;

use crate::common::{classify, credential, hint, open, when, with_spinner};
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
    let auth = match g.engine(providers).await {
        Ok(a) => a,
        Err(o) => return o,
    };
    // Redirects are followed only inside the provider's api prefixes.
    let client = match g.client_builder().and_then(|b| {
        b.scoped_to(&auth).build().map_err(|e| {
            eprintln!("error: cannot build the HTTP client: {e}");
            Outcome::InvalidInput
        })
    }) {
        Ok(c) => c,
        Err(o) => return o,
    };
    println!("testing {} ({})", p.id, p.name);
    let mut steps = Steps { total: 5, n: 0 };

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

    // 2. login (or refresh, for a provider that only refreshes)
    let fetch_step = if p.login.is_some() || p.refresh.is_none() {
        "login"
    } else {
        "refresh"
    };
    let credential = match with_spinner(
        format!("{}: getting a token…", p.id),
        credential(&auth, &p.id, &conn),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            let step = if p.fetches_tokens() {
                fetch_step
            } else {
                "inject"
            };
            steps.fail(step, e.to_string());
            if let Some(hint) = hint(g, &e) {
                println!("{hint}");
            }
            println!("result: {} does not work: the {step} step failed", p.id);
            return classify(&e);
        }
    };
    let expiry = credential.expires_at().map_or_else(
        || "no expiry".to_owned(),
        |t| format!("expires {}", when(t, auth.clock().now())),
    );
    match (credential.obtained_by(), &p.login, &p.refresh) {
        _ if credential.adopted() => steps.ok(
            fetch_step,
            format!(
                "read from the shared token store (another process fetched it) -> token, {expiry}"
            ),
        ),
        (Some(RequestKind::Refresh), _, Some(refresh)) => steps.ok(
            fetch_step,
            format!(
                "{} {} (refresh, with the stored refresh token) -> token, {expiry}",
                refresh.request.method, refresh.request.url
            ),
        ),
        (Some(_), Some(login), _) => steps.ok(
            fetch_step,
            format!("{} {} (login) -> token, {expiry}", login.method, login.url),
        ),
        _ => steps.skip("login", "static credentials: nothing to fetch"),
    }

    // 3. inject
    let parts: Vec<String> = preview_injection(&p, &conn)
        .into_iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    steps.ok("inject", parts.join("; "));

    // 4. the [test] request
    let Some(test) = &p.test else {
        steps.skip(
            "test",
            format!("no [providers.{}.test] request in the description", p.id),
        );
        steps.skip("reject", "no [test] request to send");
        println!(
            "result: {} gets a credential; add a [test] request to prove the API accepts it",
            p.id
        );
        return Outcome::Ok;
    };
    let url = match credential.api_base() {
        // A `*` host: the connection's own, from its token reply.
        Some(base) if test.url.is_wildcard() => {
            test.url.on_base(base).ok_or_else(|| Error::OutsideApiBase {
                provider: p.id.clone(),
                connection: conn.id().to_owned(),
                to: test.url.source().to_owned(),
                base: base.to_string(),
            })
        }
        _ => conn.render_url(&p, &test.url),
    };
    let url = match url {
        Ok(url) => url,
        Err(e) => {
            steps.fail("test", e.to_string());
            return classify(&e);
        }
    };
    let mut request = client.request(test.method.clone(), url);
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
    let probe = request.try_clone();
    credential.apply_to_headers(request.headers_mut());
    credential.apply_to_url(request.url_mut());
    let label = format!("{} {}", test.method, test.url);
    let outcome = match with_spinner(format!("{}: {label}…", p.id), client.execute(request)).await
    {
        Ok(resp) if test.expect_status.contains(&resp.status().as_u16()) => {
            steps.ok("test", format!("{label} -> {}", resp.status()));
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
            return Outcome::AuthFailure;
        }
        Err(e) => {
            steps.fail("test", format!("{label}: {}", credential.redact_error(e)));
            println!("result: {} does not work: the test request failed", p.id);
            return Outcome::AuthFailure;
        }
    };

    // 5. how the API rejects a wrong credential
    if !reject_step(&mut steps, &client, &p, &conn, probe, &label).await {
        println!(
            "result: {} got a token, but its [test] request does not prove that the API accepts it",
            p.id
        );
        return Outcome::InvalidInput;
    }
    println!("result: {} works", p.id);
    outcome
}

/// Sends the test request once more with a deliberately wrong credential, to
/// learn with which status the API rejects one: the engine renews and
/// retries only on `on_unauthorized.status` (`[401]` by default). False when
/// the wrong credential was accepted: the test request proves nothing.
async fn reject_step(
    steps: &mut Steps,
    client: &reqwest::Client,
    p: &Provider,
    conn: &Connection,
    probe: Option<reqwest::Request>,
    label: &str,
) -> bool {
    let (Some(mut probe), Ok(wrong)) = (probe, Injection::deliberately_wrong(p, conn)) else {
        steps.skip("reject", "the test request cannot be sent twice");
        return true;
    };
    wrong.apply_to_headers(probe.headers_mut());
    wrong.apply_to_url(probe.url_mut());
    let status = match client.execute(probe).await {
        Ok(resp) => resp.status(),
        Err(e) => {
            let e = wrong.redact_error(e);
            steps.skip("reject", format!("{label} with a wrong credential: {e}"));
            return true;
        }
    };
    let listed = &p.on_unauthorized.status;
    let code = status.as_u16();
    if status.is_success() {
        steps.fail(
            "reject",
            format!(
                "{label} with a wrong credential -> {status}: this request does not need a credential, so it proves nothing; point [test] url at an endpoint that requires one"
            ),
        );
        return false;
    } else if listed.contains(&code) {
        steps.ok(
            "reject",
            format!(
                "a wrong credential gets {status}, which on_unauthorized.status {listed:?} covers"
            ),
        );
    } else if !p.fetches_tokens() {
        steps.ok(
            "reject",
            format!("a wrong credential gets {status} (static credentials: nothing to renew)"),
        );
    } else {
        let mut suggested = listed.clone();
        suggested.push(code);
        let suggested: Vec<String> = suggested.iter().map(u16::to_string).collect();
        steps.ok(
            "reject",
            format!(
                "a wrong credential gets {status}, not {listed:?}: this API rejects credentials with {code}; add it so that a rejected token is renewed: on_unauthorized = {{ status = [{}] }}",
                suggested.join(", ")
            ),
        );
    }
    true
}
