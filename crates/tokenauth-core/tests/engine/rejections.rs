//! What a rejected request leads to (`ProviderHandle::after_response`, the
//! one decision both adapters drive).

use http::StatusCode;
use tokenauth_core::TokenAuth;

use crate::helpers::*;

fn reobtimaal(auth: &TokenAuth) -> tokenauth_core::ProviderHandle {
    auth.provider("reobtimaal").expect("seed provider")
}

#[tokio::test]
async fn a_rejected_outdated_token_is_retried_with_the_current_one() {
    let s = setup().await;
    let conn = reob();
    let p = reobtimaal(&s.auth);
    let old = p.credential(Some(&conn)).await.unwrap();
    // The token is replaced while a request with the old one is in flight
    // (a renewal; here forced by an invalidation).
    assert!(p.invalidate(Some(&conn), &old).await);
    let current = p.credential(Some(&conn)).await.unwrap();
    assert_ne!(current.token_id(), old.token_id());
    let before = (s.auth.stats(), s.emu.stats().reobtimaal.token.requests);

    // Django OAuth Toolkit answers 403 to a token it deleted on rotation:
    // not in on_unauthorized ([401]), yet the retry uses the current token.
    for status in [403, 401] {
        let retry = p
            .after_response(
                StatusCode::from_u16(status).unwrap(),
                Some(&conn),
                &old,
                true,
            )
            .await
            .unwrap();
        assert_eq!(
            retry.map(|c| c.token_id()),
            Some(current.token_id()),
            "HTTP {status}"
        );
    }
    // Nothing was invalidated or fetched for it.
    let after = (s.auth.stats(), s.emu.stats().reobtimaal.token.requests);
    assert_eq!(after.0.invalidations, before.0.invalidations);
    assert_eq!(after.1, before.1);
    assert!(
        p.cached(Some(&conn))
            .is_some_and(|c| c.token_id() == current.token_id())
    );

    // A request that cannot be sent again is returned as it is.
    assert!(
        p.after_response(StatusCode::FORBIDDEN, Some(&conn), &old, false)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_403_to_the_current_token_is_returned_as_it_is() {
    let s = setup().await;
    let conn = reob();
    let p = reobtimaal(&s.auth);
    let current = p.credential(Some(&conn)).await.unwrap();
    // REOBtimaal answers 403 to a valid token without rights to a part of
    // the API: not a rejection of the token, so no renewal and no retry.
    assert!(
        p.after_response(StatusCode::FORBIDDEN, Some(&conn), &current, true)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(s.auth.stats().invalidations, 0);
    assert_eq!(s.emu.stats().reobtimaal.token.requests, 1);
    // Other statuses are never a rejection.
    for status in [200, 404, 500] {
        assert!(
            p.after_response(
                StatusCode::from_u16(status).unwrap(),
                Some(&conn),
                &current,
                true
            )
            .await
            .unwrap()
            .is_none()
        );
    }
}

#[tokio::test]
async fn a_401_to_the_current_token_renews_once_and_retries() {
    let s = setup().await;
    let conn = reob();
    let p = reobtimaal(&s.auth);
    let current = p.credential(Some(&conn)).await.unwrap();
    let renewed = p
        .after_response(StatusCode::UNAUTHORIZED, Some(&conn), &current, true)
        .await
        .unwrap()
        .expect("renewed for the retry");
    assert_ne!(renewed.token_id(), current.token_id());
    assert_eq!(s.auth.stats().invalidations, 1);
    assert_eq!(s.emu.stats().reobtimaal.token.requests, 2);
}
