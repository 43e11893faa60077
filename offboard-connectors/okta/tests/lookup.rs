//! Lookup against the simulated tenant: which profile attributes may match a person, and
//! identifiers longer than Okta allows.

mod common;

use common::connector;
use offboard_core::{
    AccountRef, AccountStatus, Action, ActionName, Connector, ErrorKind, ExecuteOptions,
    LookupRequest, Person,
};
use offboard_testkit::sim::okta::{NewUser, OktaTenant};

/// `profile.secondEmail` is the user's own recovery address, which they can edit: a stranger
/// who enters Jane's address there must never be taken for Jane.
#[tokio::test]
async fn a_strangers_second_email_never_makes_their_account_the_match() {
    let tenant = OktaTenant::start().await;
    let okta = connector(&tenant);
    let stranger = tenant.add_user(NewUser {
        second_email: Some("jane@example.com".into()),
        ..NewUser::active("stranger@example.com")
    });
    let jane = LookupRequest::person(Person::new("p1", "jane@example.com"));
    assert_eq!(okta.lookup(&jane).await.unwrap(), None);
    let search = tenant.requests()[0]
        .query_param("search")
        .unwrap()
        .to_owned();
    assert_eq!(
        search,
        r#"profile.login eq "jane@example.com" or profile.email eq "jane@example.com""#
    );

    // With Jane's own account present, she is the one match (not an ambiguity).
    let own = tenant.add_user(NewUser::active("jane@example.com"));
    let found = okta.lookup(&jane).await.unwrap().unwrap();
    assert_eq!(found.external_id, own);
    assert_ne!(found.external_id, stranger);
    // Her primary email, when it differs from her login, still finds her.
    let ann = tenant.add_user(NewUser {
        email: "ann.smith@example.com".into(),
        ..NewUser::active("ann@example.com")
    });
    let by_email = LookupRequest::person(Person::new("p2", "ann.smith@example.com"));
    assert_eq!(
        okta.lookup(&by_email).await.unwrap().unwrap().external_id,
        ann
    );
}

/// Okta's `UserProfile` allows at most 100 characters in `login` and `email` (spec:
/// `maxLength: 100`), and ids are shorter: a longer identifier cannot name an Okta user. It is
/// refused before any request, with a short message that does not repeat it.
#[tokio::test]
async fn identifiers_longer_than_okta_allows_are_refused_before_any_request() {
    let tenant = OktaTenant::start().await;
    let okta = connector(&tenant);
    let huge = format!("{}@example.com", "a".repeat(1 << 20));
    let just_over = format!("{}@example.com", "b".repeat(101 - 12));
    assert_eq!(just_over.chars().count(), 101);
    let requests = [
        LookupRequest::person(Person::new("p", huge.as_str())),
        LookupRequest::person(Person::new("p", "ok@example.com").with_alias(huge.as_str())),
        LookupRequest::person(Person::new("p", "ok@example.com")).with_external_id(huge.as_str()),
        LookupRequest::person(Person::new("p", just_over.as_str())),
        // A control character beyond the bound is not echoed either.
        LookupRequest::person(Person::new("p", format!("{huge}\n"))),
    ];
    for request in &requests {
        let e = okta.lookup(request).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().len() < 300, "{} bytes", e.to_string().len());
        assert!(!e.to_string().contains("aaaaaaaaaa"));
    }
    let account = AccountRef::new("okta", huge.as_str(), "x", AccountStatus::Active);
    let suspend = Action::new(ActionName::from_static("okta.suspend"));
    let e = okta
        .execute(&account, &suspend, &ExecuteOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().len() < 300, "{} bytes", e.to_string().len());
    assert!(tenant.requests().is_empty(), "nothing was sent");

    // At the bound, the lookup is sent.
    let at_bound = format!("{}@example.com", "c".repeat(100 - 12));
    let request = LookupRequest::person(Person::new("p", at_bound.as_str()));
    assert_eq!(okta.lookup(&request).await.unwrap(), None);
    assert_eq!(tenant.requests().len(), 1);
}
