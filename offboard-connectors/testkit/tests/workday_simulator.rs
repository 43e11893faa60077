//! The simulated Workday tenant: its routes are the vendored (handwritten) RaaS description's,
//! and it refuses what Workday refuses.

use offboard_testkit::sim::workday::{NewWorker, REPORT_COLUMNS, WorkdayTenant};

#[test]
fn workday_every_route_exists_in_the_vendored_description() {
    let text = offboard_testkit::sim::specs::read("workday/workday-raas.handwritten.yaml");
    let spec: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    for (method, path) in WorkdayTenant::ROUTES {
        let op = &spec["paths"][*path][method.to_ascii_lowercase().as_str()];
        assert!(op.is_mapping(), "{method} {path} is not in the description");
    }
    let columns = spec["components"]["schemas"]["WorkerEntry"]["properties"]
        .as_mapping()
        .unwrap();
    for c in REPORT_COLUMNS {
        assert!(columns.contains_key(c), "{c} is not a described column");
    }
}

#[tokio::test]
async fn workday_refuses_what_workday_refuses() {
    let wd = WorkdayTenant::start().await;
    let id = wd.hire(NewWorker {
        employee_id: "E1".into(),
        name: "Ada Tester".into(),
        email: "ada@example.com".into(),
        ..NewWorker::default()
    });
    let http = reqwest::Client::new();
    let (client, secret, refresh) = wd.client();
    let token_url = format!("{}/ccx/oauth2/acme/token", wd.uri());
    let token = |user: &str, pass: &str, grant: &str, rt: &str| {
        http.post(&token_url)
            .basic_auth(user, Some(pass))
            .form(&[("grant_type", grant), ("refresh_token", rt)])
            .send()
    };
    assert_eq!(
        token(client, "nope", "refresh_token", refresh)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        token(client, secret, "refresh_token", "nope")
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        token(client, secret, "client_credentials", refresh)
            .await
            .unwrap()
            .status(),
        400
    );
    let ok: serde_json::Value = token(client, secret, "refresh_token", refresh)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = ok["access_token"].as_str().unwrap().to_owned();
    assert_eq!(ok["token_type"], "Bearer");

    let report = format!(
        "{}/ccx/service/customreport2/acme/ISU_Offboard/Workers_for_Offboard",
        wd.uri()
    );
    let get = |url: String, bearer: &str| http.get(url).bearer_auth(bearer).send();
    assert_eq!(
        get(format!("{report}?format=json"), "nope")
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        get(report.clone(), &access).await.unwrap().status(),
        400,
        "no format"
    );
    assert_eq!(
        get(
            format!("{report}?format=json&Effective_Date=2026-01-01"),
            &access
        )
        .await
        .unwrap()
        .status(),
        400,
        "an unknown prompt"
    );
    let other = report.replace("Workers_for_Offboard", "Other");
    assert_eq!(
        get(format!("{other}?format=json"), &access)
            .await
            .unwrap()
            .status(),
        404
    );
    let post = http
        .post(format!("{report}?format=json"))
        .bearer_auth(&access)
        .send();
    assert_eq!(post.await.unwrap().status(), 405);
    let body: serde_json::Value = get(format!("{report}?format=json"), &access)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["Report_Entry"][0]["Worker_ID"], id.as_str());
    assert_eq!(body["Report_Entry"][0]["Terminated"], "0");
    assert!(
        body["Report_Entry"][0].get("Termination_Date").is_none(),
        "empty fields left out"
    );

    wd.set_per_minute(0);
    let throttled = get(format!("{report}?format=json"), &access).await.unwrap();
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().get("retry-after").is_some());
    assert!(
        !format!("{:?}", wd.requests()).contains(&access),
        "no token recorded"
    );
}
