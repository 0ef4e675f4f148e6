//! Hardening (issue 8): the token endpoint's faults through the reqwest
//! middleware, 1,000 concurrent callers against a failing endpoint, credential
//! scoping through both adapters, hostile token replies, and the other
//! promises of `SECURITY.md` (no redirects for token requests, https, the
//! file store's permissions). One test binary,
//! to keep link time down; the secret-leak checks (which install a global
//! `tracing` subscriber) and the soak test have their own.

mod helpers;

#[path = "hardening/concurrency.rs"]
mod concurrency;
#[path = "hardening/faults.rs"]
mod faults;
#[path = "hardening/promises.rs"]
mod promises;
#[path = "hardening/replies.rs"]
mod replies;
#[path = "hardening/scoping.rs"]
mod scoping;
