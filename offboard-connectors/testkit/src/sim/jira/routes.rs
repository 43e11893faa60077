//! The responder: auth, throttling, faults, then the routes of [`super::ROUTES`].

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

use super::jql::{self, Field};
use super::{RESOLUTIONS, RecordedRequest, STATUSES, State, TRANSITIONS};
use crate::sim::layer::{self, Handler, Redaction};

pub(crate) struct Router {
    pub(crate) state: Arc<Mutex<State>>,
}

fn errors(status: u16, messages: &[&str], fields: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "errorMessages": messages,
        "errors": fields,
    }))
}

fn not_found_issue() -> ResponseTemplate {
    errors(
        404,
        &["Issue does not exist or you do not have permission to see it."],
        json!({}),
    )
}

/// Splits a comma-separated `fields` list (GET may repeat the parameter).
fn field_list(values: Vec<String>) -> Option<Vec<String>> {
    let list: Vec<String> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    (!list.is_empty()).then_some(list)
}

impl Handler for Router {
    fn handle(&self, request: &Request) -> ResponseTemplate {
        let mut state = layer::lock(&self.state);
        let latency = state.layer.faults.latency;
        let response = handle(&mut state, request);
        let status = response.1;
        state.layer.requests.push(RecordedRequest {
            method: request.method.to_string(),
            path: request.url.path().to_string(),
            query: request.url.query().map(str::to_owned),
            headers: layer::redacted_headers(request, Redaction::Whole),
            body: String::from_utf8_lossy(&request.body).into_owned(),
            status,
        });
        let response = response.0;
        if latency.is_zero() {
            response
        } else {
            response.set_delay(latency)
        }
    }
}

/// A response with its status kept alongside (wiremock does not expose it).
struct Answer(ResponseTemplate, u16);

fn answer(status: u16, t: ResponseTemplate) -> Answer {
    Answer(t, status)
}

fn handle(state: &mut State, req: &Request) -> Answer {
    // 1. Authentication.
    if layer::authorization(req) != state.auth {
        return answer(
            401,
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", "Basic realm=\"protected-area\"")
                .set_body_string("Client must be authenticated to access this resource."),
        );
    }
    // 2. Rate limits.
    if let Some(secs) = pop_front(&mut state.faults.throttle_next) {
        return answer(429, throttled(secs, 0));
    }
    if let Some((limit, window)) = state.faults.budget {
        let now = state.started.elapsed();
        let counted = state.faults.window.count(now, window, limit);
        if !counted.admitted {
            return answer(429, throttled(counted.retry_after(now), limit));
        }
    }
    // 3. Server faults.
    if let Some(status) = state.layer.fail_next.take(&()) {
        return answer(
            status,
            errors(status, &["Internal server error (injected)."], json!({})),
        );
    }
    if state.layer.server_error() {
        return answer(
            503,
            errors(503, &["Service unavailable (injected)."], json!({})),
        );
    }
    route(state, req)
}

fn pop_front<T>(v: &mut Vec<T>) -> Option<T> {
    (!v.is_empty()).then(|| v.remove(0))
}

fn throttled(secs: u64, limit: u32) -> ResponseTemplate {
    let reset = chrono::Utc::now()
        + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 2_000));
    ResponseTemplate::new(429)
        .insert_header("retry-after", secs.to_string().as_str())
        .insert_header("x-ratelimit-limit", limit.to_string().as_str())
        .insert_header("x-ratelimit-remaining", "0")
        .insert_header(
            "x-ratelimit-reset",
            reset.format("%Y-%m-%dT%H:%MZ").to_string().as_str(),
        )
        .insert_header("ratelimit-reason", "jira-burst-based")
        .set_body_json(json!({"errorMessages": ["Rate limit exceeded."], "errors": {}}))
}

fn route(state: &mut State, req: &Request) -> Answer {
    let path = req.url.path();
    let Some(rest) = path.strip_prefix("/rest/api/3/") else {
        return answer(404, errors(404, &["Not found."], json!({})));
    };
    let segs: Vec<&str> = rest.split('/').collect();
    let method = req.method.as_str();
    match (method, segs.as_slice()) {
        ("POST", ["issue"]) => create_issue(state, req),
        ("GET", ["issue", key]) => get_issue(state, req, key),
        ("GET" | "POST", ["search", "jql"]) => search(state, req),
        ("GET", ["issue", key, "transitions"]) => get_transitions(state, key),
        ("POST", ["issue", key, "transitions"]) => do_transition(state, req, key),
        ("PUT", ["issue", key, "assignee"]) => assign(state, req, key),
        (_, ["issue"] | ["issue", _] | ["search", "jql"])
        | (_, ["issue", _, "transitions" | "assignee"]) => answer(405, ResponseTemplate::new(405)),
        _ => answer(404, errors(404, &["Not found."], json!({}))),
    }
}

fn body_json(req: &Request) -> Option<Value> {
    serde_json::from_slice(&req.body).ok()
}

fn bad_json() -> Answer {
    answer(
        400,
        errors(400, &["The request body is not valid JSON."], json!({})),
    )
}

fn create_issue(state: &mut State, req: &Request) -> Answer {
    let Some(body) = body_json(req) else {
        return bad_json();
    };
    let fields = &body["fields"];
    let mut errs = serde_json::Map::new();
    let project = match (
        fields["project"]["key"].as_str(),
        fields["project"]["id"].as_str(),
    ) {
        (Some(k), _) => state.projects.iter().find(|(pk, _)| pk == k),
        (None, Some(id)) => state.projects.iter().find(|(_, pid)| pid == id),
        _ => None,
    }
    .map(|(k, _)| k.clone());
    if project.is_none() {
        errs.insert("project".into(), json!("Specify a valid project ID or key"));
    }
    let issue_type = match (
        fields["issuetype"]["id"].as_str(),
        fields["issuetype"]["name"].as_str(),
    ) {
        (Some(id), _) => state.issue_types.iter().find(|(i, _)| i == id),
        (None, Some(n)) => state.issue_types.iter().find(|(_, name)| name == n),
        _ => None,
    }
    .map(|(i, _)| i.clone());
    if issue_type.is_none() {
        errs.insert("issuetype".into(), json!("Specify an issue type"));
    }
    let summary = fields["summary"].as_str().unwrap_or("").to_string();
    if summary.trim().is_empty() {
        errs.insert(
            "summary".into(),
            json!("You must specify a summary of the issue."),
        );
    } else if summary.chars().count() > 255 {
        errs.insert(
            "summary".into(),
            json!("Summary must be less than 255 characters."),
        );
    } else if summary.contains('\n') {
        errs.insert(
            "summary".into(),
            json!("The summary is invalid because it contains newline characters."),
        );
    }
    let description = match &fields["description"] {
        Value::Null => None,
        d if d["type"] == "doc" && d["version"] == 1 && d["content"].is_array() => Some(d.clone()),
        _ => {
            errs.insert(
                "description".into(),
                json!("Operation value must be an Atlassian Document (see the Atlassian Document Format)"),
            );
            None
        }
    };
    let mut labels = Vec::new();
    match &fields["labels"] {
        Value::Null => {}
        Value::Array(items) => {
            for l in items {
                match l.as_str() {
                    Some(s) if s.is_empty() || s.chars().any(char::is_whitespace) => {
                        errs.insert(
                            "labels".into(),
                            json!(format!("The label '{s}' contains spaces which is invalid.")),
                        );
                    }
                    Some(s) if s.chars().count() > 255 => {
                        errs.insert(
                            "labels".into(),
                            json!("The label must not exceed 255 characters."),
                        );
                    }
                    Some(s) => labels.push(s.to_string()),
                    None => {
                        errs.insert("labels".into(), json!("Labels must be strings."));
                    }
                }
            }
        }
        _ => {
            errs.insert("labels".into(), json!("Labels must be an array."));
        }
    }
    let assignee = match fields["assignee"]["accountId"].as_str() {
        None => None,
        Some(a) => match state.user(a) {
            Some(u) => Some(u.account_id.clone()),
            None => {
                errs.insert(
                    "assignee".into(),
                    json!(format!("User '{a}' cannot be assigned issues.")),
                );
                None
            }
        },
    };
    if !errs.is_empty() {
        return answer(400, errors(400, &[], Value::Object(errs)));
    }
    let (Some(project), Some(issue_type)) = (project, issue_type) else {
        return answer(400, errors(400, &["Invalid request."], json!({})));
    };
    let i = state.create(project, issue_type, summary, description, labels, assignee);
    if state.faults.lose_creates > 0 {
        state.faults.lose_creates -= 1;
        return answer(504, ResponseTemplate::new(504));
    }
    let issue = &state.issues[i];
    answer(
        201,
        ResponseTemplate::new(201).set_body_json(json!({
            "id": issue.id.to_string(),
            "key": issue.key,
            "self": format!("{}/rest/api/3/issue/{}", state.base, issue.id),
        })),
    )
}

fn query_values(req: &Request, name: &str) -> Vec<String> {
    req.url
        .query_pairs()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

fn get_issue(state: &mut State, req: &Request, key: &str) -> Answer {
    let Some(i) = state.issue_index(key) else {
        return answer(404, not_found_issue());
    };
    let fields = field_list(query_values(req, "fields"));
    answer(
        200,
        ResponseTemplate::new(200).set_body_json(state.issue_json(i, fields.as_deref())),
    )
}

fn search(state: &mut State, req: &Request) -> Answer {
    let (jql, fields, max, token, reconcile) = if req.method.as_str() == "POST" {
        let Some(body) = body_json(req) else {
            return bad_json();
        };
        let allowed = [
            "expand",
            "fields",
            "fieldsByKeys",
            "jql",
            "maxResults",
            "nextPageToken",
            "properties",
            "reconcileIssues",
        ];
        if let Some(k) = body
            .as_object()
            .and_then(|obj| obj.keys().find(|k| !allowed.contains(&k.as_str())))
        {
            return answer(
                400,
                errors(400, &[&format!("Unrecognized field \"{k}\"")], json!({})),
            );
        }
        let fields = body["fields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let reconcile: Option<Vec<u64>> = match &body["reconcileIssues"] {
            Value::Null => Some(Vec::new()),
            Value::Array(ids) => ids.iter().map(Value::as_u64).collect(),
            _ => None,
        };
        (
            body["jql"].as_str().map(str::to_owned),
            fields,
            body["maxResults"].as_u64(),
            body["nextPageToken"].as_str().map(str::to_owned),
            reconcile,
        )
    } else {
        let reconcile: Option<Vec<u64>> = query_values(req, "reconcileIssues")
            .iter()
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().parse().ok())
            .collect();
        (
            query_values(req, "jql").into_iter().next(),
            query_values(req, "fields"),
            query_values(req, "maxResults")
                .first()
                .and_then(|v| v.parse().ok()),
            query_values(req, "nextPageToken").into_iter().next(),
            reconcile,
        )
    };
    // `reconcileIssues`: issue ids (integers), at most 50 (the spec's limit).
    let reconcile = match reconcile {
        Some(ids) if ids.len() <= 50 => ids,
        Some(_) => {
            return answer(
                400,
                errors(400, &["reconcileIssues accepts at most 50 ids."], json!({})),
            );
        }
        None => {
            return answer(
                400,
                errors(
                    400,
                    &["reconcileIssues must be a list of issue ids."],
                    json!({}),
                ),
            );
        }
    };
    let Some(jql) = jql else {
        return answer(
            400,
            errors(
                400,
                &["Unbounded JQL queries are not allowed here."],
                json!({}),
            ),
        );
    };
    let query = match jql::parse(&jql) {
        Ok(q) => q,
        Err(msg) => return answer(400, errors(400, &[&msg], json!({}))),
    };
    let fields = field_list(fields).unwrap_or_else(|| vec!["id".to_string()]);
    let now = std::time::Instant::now();
    let mut matching: Vec<usize> = (0..state.issues.len())
        .filter(|&i| {
            let issue = &state.issues[i];
            // The index lags behind creation, except for the issues asked to be reconciled.
            (issue.indexed_at <= now || reconcile.contains(&issue.id))
                && query.clauses.iter().all(|c| match c.field {
                    Field::Labels => c.values.iter().any(|v| issue.labels.contains(v)),
                    Field::Project => c.values.contains(&issue.project),
                    Field::Key => c
                        .values
                        .iter()
                        .any(|v| *v == issue.key || *v == issue.id.to_string()),
                })
        })
        .collect();
    // Issues are kept in creation order, which is also key order within a project.
    if query.descending == Some(true) {
        matching.reverse();
    }
    let max = usize::try_from(max.unwrap_or(50).clamp(1, 5000)).unwrap_or(50);
    let start = match token.map(|t| t.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return answer(
                400,
                errors(400, &["The next page token is invalid."], json!({})),
            );
        }
    };
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(max)
        .map(|&i| state.issue_json(i, Some(&fields)))
        .collect();
    let is_last = start + page.len() >= matching.len();
    let mut body = json!({"issues": page, "isLast": is_last});
    if !is_last {
        body["nextPageToken"] = json!((start + max).to_string());
    }
    answer(200, ResponseTemplate::new(200).set_body_json(body))
}

fn transition_json(state: &State, t: &super::Transition) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "to": state.status_json(t.to),
        "hasScreen": false,
        "isGlobal": false,
        "isInitial": false,
        "isAvailable": true,
        "isConditional": false,
        "isLooped": false,
    })
}

fn get_transitions(state: &mut State, key: &str) -> Answer {
    let Some(i) = state.issue_index(key) else {
        return answer(404, not_found_issue());
    };
    let from = state.issues[i].status;
    let list: Vec<Value> = TRANSITIONS
        .iter()
        .filter(|t| t.from.contains(&from))
        .map(|t| transition_json(state, t))
        .collect();
    answer(
        200,
        ResponseTemplate::new(200)
            .set_body_json(json!({"expand": "transitions", "transitions": list})),
    )
}

fn do_transition(state: &mut State, req: &Request, key: &str) -> Answer {
    let Some(i) = state.issue_index(key) else {
        return answer(404, not_found_issue());
    };
    let Some(body) = body_json(req) else {
        return bad_json();
    };
    let Some(id) = body["transition"]["id"].as_str() else {
        return answer(
            400,
            errors(400, &["Transition id must be specified."], json!({})),
        );
    };
    let from = state.issues[i].status;
    match TRANSITIONS
        .iter()
        .find(|t| t.id == id && t.from.contains(&from))
    {
        Some(t) => {
            let to = t.to;
            // `fields.resolution` ({"name"} or {"id"}) may accompany a move into a done status;
            // Jira refuses it elsewhere (the field is not on that transition's screen).
            let wanted = &body["fields"]["resolution"];
            let resolution = if wanted.is_null() {
                None
            } else if STATUSES[to].2 != "done" {
                return answer(
                    400,
                    errors(
                        400,
                        &[],
                        json!({"resolution": "Field 'resolution' cannot be set. It is not on the appropriate screen, or unknown."}),
                    ),
                );
            } else {
                match RESOLUTIONS.iter().position(|(id, name, _)| {
                    wanted["id"].as_str() == Some(id) || wanted["name"].as_str() == Some(name)
                }) {
                    Some(r) => Some(r),
                    None => {
                        return answer(
                            400,
                            errors(400, &[], json!({"resolution": "Resolution is invalid."})),
                        );
                    }
                }
            };
            state.set_status(i, to, resolution);
            answer(204, ResponseTemplate::new(204))
        }
        None => answer(
            400,
            errors(
                400,
                &[&format!(
                    "Transition id '{id}' is not valid for this issue (status {}).",
                    STATUSES[from].1
                )],
                json!({}),
            ),
        ),
    }
}

fn assign(state: &mut State, req: &Request, key: &str) -> Answer {
    let Some(i) = state.issue_index(key) else {
        return answer(404, not_found_issue());
    };
    let Some(body) = body_json(req) else {
        return bad_json();
    };
    let to = match &body["accountId"] {
        Value::Null => None,
        Value::String(a) if a == "-1" => None,
        Value::String(a) => match state.user(a) {
            Some(u) => Some(u.account_id.clone()),
            None => {
                return answer(
                    400,
                    errors(
                        400,
                        &[],
                        json!({"assignee": format!("User '{a}' cannot be assigned issues.")}),
                    ),
                );
            }
        },
        _ => {
            return answer(
                400,
                errors(400, &["accountId must be a string or null."], json!({})),
            );
        }
    };
    state.set_assignee(i, to);
    answer(204, ResponseTemplate::new(204))
}
