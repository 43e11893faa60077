//! The simulated SuccessFactors company: what it serves matches SAP's EDMX, and its OData
//! reads, paging and refusals.

use offboard_testkit::sim::successfactors::{NewUser, SuccessFactorsTenant, metadata};
use serde_json::Value;

/// The attributes of `<{element} Name="{name}" …>` in the `User` entity type.
fn declared(edmx: &str, element: &str, name: &str) -> Option<String> {
    let start = edmx.find("<EntityType Name=\"User\">")?;
    let end = start + edmx[start..].find("</EntityType>")?;
    let body = &edmx[start..end];
    let at = body.find(&format!("<{element} Name=\"{name}\" "))?;
    Some(body[at..at + body[at..].find('>')?].to_owned())
}

#[test]
fn successfactors_serves_what_the_edmx_declares() {
    let edmx =
        offboard_testkit::sim::specs::read("successfactors/PLTUserManagement.offboarding.edmx");
    assert_eq!(edmx, metadata(), "$metadata serves the vendored document");
    assert!(edmx.contains("<EntitySet Name=\"User\" EntityType=\"SFOData.User\""));
    assert!(
        edmx.contains("sap:deletable=\"false\""),
        "users are never deleted"
    );
    for p in SuccessFactorsTenant::PROPERTIES {
        assert!(
            declared(&edmx, "Property", p).is_some(),
            "{p} is a User property"
        );
    }
    for n in SuccessFactorsTenant::NAVIGATIONS {
        let nav = declared(&edmx, "NavigationProperty", n).expect("declared");
        assert!(
            nav.contains("Relationship=\"SFOData.manager_of_user\""),
            "{nav}"
        );
    }
    for p in SuccessFactorsTenant::FILTERABLE {
        let prop = declared(&edmx, "Property", p).expect("declared");
        assert!(
            prop.contains("sap:filterable=\"true\""),
            "{p} filterable: {prop}"
        );
    }
    for p in SuccessFactorsTenant::SORTABLE {
        let prop = declared(&edmx, "Property", p).expect("declared");
        assert!(
            prop.contains("sap:sortable=\"true\""),
            "{p} sortable: {prop}"
        );
    }
    let email = declared(&edmx, "Property", "email").unwrap();
    assert!(
        email.contains("sap:filterable=\"false\""),
        "and is refused in a filter"
    );
    let modified = declared(&edmx, "Property", "lastModifiedDateTime").unwrap();
    assert!(modified.contains("Type=\"Edm.DateTimeOffset\""));

    let ec = offboard_testkit::sim::specs::read(
        "successfactors/ECEmploymentInformation.offboarding.edmx",
    );
    assert!(ec.contains("EntityType=\"SFOData.EmpEmployment\" Name=\"EmpEmployment\""));
    let start = ec.find("<EntityType Name=\"EmpEmployment\">").unwrap();
    let body = &ec[start..];
    for p in SuccessFactorsTenant::EMPLOYMENT_PROPERTIES {
        assert!(
            body.contains(&format!("Name=\"{p}\"")),
            "{p} is an EmpEmployment property"
        );
    }
    let user = &body[body.find("Name=\"userId\" Nullable").unwrap()..];
    assert!(user[..user.find('>').unwrap()].contains("sap:filterable=\"true\""));
    assert!(
        body.contains("sap:label=\"Termination Date\""),
        "endDate is the termination date"
    );
}

async fn get(t: &SuccessFactorsTenant, path_and_query: &str, password: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}{path_and_query}", t.uri()))
        .basic_auth(format!("{}@{}", t.username(), t.company()), Some(password))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn successfactors_reads_pages_and_refusals() {
    let t = SuccessFactorsTenant::start().await;
    let pw = t.password().to_owned();
    for i in 0..5 {
        let mut u = NewUser::new(&format!("u{i}"), &format!("u{i}@example.com"), "U", "Ser");
        u.manager = (i > 0).then(|| "u0".to_owned());
        t.add_user(u);
    }
    assert!(t.set_status("u4", "f"));
    assert_eq!(get(&t, "/odata/v2/User", "wrong").await.0, 401);

    let (status, body) = get(&t, "/odata/v2/User?$format=json", &pw).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["d"]["results"].as_array().unwrap().len(),
        4,
        "active users only"
    );
    let (_, body) = get(
        &t,
        "/odata/v2/User?$filter=status%20in%20't','f'&$select=userId,status,manager/email&$expand=manager&customPageSize=2&$orderby=userId%20desc",
        &pw,
    )
    .await;
    let first = &body["d"]["results"];
    assert_eq!(first[0]["userId"], "u4");
    assert_eq!(first[0]["status"], "f");
    assert_eq!(first[0]["manager"]["email"], "u0@example.com");
    assert!(first[0].get("email").is_none(), "only what was selected");
    let next = body["d"]["__next"].as_str().unwrap();
    assert!(
        next.contains("%24skiptoken=") || next.contains("$skiptoken="),
        "{next}"
    );
    // The snapshot holds: a user added now is not in the rest of this listing.
    t.add_user(NewUser::new("u9", "u9@example.com", "U", "Nine"));
    let rest = next
        .strip_prefix(&t.uri())
        .unwrap_or_else(|| panic!("{next} {}", t.uri()));
    let (_, page2) = get(&t, rest, &pw).await;
    assert_eq!(page2["d"]["results"][0]["userId"], "u2");
    let rest = page2["d"]["__next"]
        .as_str()
        .unwrap()
        .strip_prefix(&t.uri())
        .unwrap()
        .to_owned();
    let (_, page3) = get(&t, &rest, &pw).await;
    assert_eq!(page3["d"]["results"].as_array().unwrap().len(), 1);
    assert!(page3["d"].get("__next").is_none());

    let (status, one) = get(
        &t,
        "/odata/v2/User('u4')?$select=userId,lastModifiedDateTime",
        &pw,
    )
    .await;
    assert_eq!(status, 200, "{one}");
    let modified = one["d"]["lastModifiedDateTime"].as_str().unwrap();
    assert!(
        modified.starts_with("/Date(") && modified.ends_with("+0000)/"),
        "{modified}"
    );
    t.add_user(NewUser::new("o'brien", "ob@example.com", "O", "B"));
    assert_eq!(get(&t, "/odata/v2/User('o''brien')", &pw).await.0, 200);
    let (status, missing) = get(&t, "/odata/v2/User('nobody')", &pw).await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("COE_RESOURCE_NOT_FOUND"))
    );
    for bad in [
        "/odata/v2/User?$filter=email%20eq%20'x'",
        "/odata/v2/User?$select=password",
        "/odata/v2/User?$select=manager/email",
        "/odata/v2/User?customPageSize=1001",
        "/odata/v2/User?$orderby=email",
        "/odata/v2/User?$skiptoken=99-1",
        "/odata/v2/User?$format=atom",
        "/odata/v2/User?top=1",
        "/odata/v2/User('unquoted)",
    ] {
        let (status, body) = get(&t, bad, &pw).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"]["message"]["value"].is_string(), "{bad}");
    }
    assert!(t.terminate("u1", chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()));
    let (status, e) = get(
        &t,
        "/odata/v2/EmpEmployment?$filter=userId%20eq%20'u1'&$select=userId,endDate",
        &pw,
    )
    .await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["d"]["results"][0]["endDate"], "/Date(1795996800000)/");
    assert!(e["d"]["results"][0].get("startDate").is_none());
    for bad in [
        "/odata/v2/EmpEmployment?$filter=status%20eq%20'f'",
        "/odata/v2/EmpEmployment?$expand=manager",
        "/odata/v2/EmpEmployment?$select=email",
    ] {
        assert_eq!(get(&t, bad, &pw).await.0, 400, "{bad}");
    }
    t.fail_next(1, 429);
    let r = reqwest::Client::new()
        .get(format!("{}/odata/v2/User", t.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["retry-after"].to_str().unwrap()
        ),
        (429, "30")
    );
    assert!(
        !format!("{:?}", t.requests()).contains(&pw),
        "no password recorded"
    );
}
