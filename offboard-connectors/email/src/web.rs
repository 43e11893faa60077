//! The task page a delegate opens from the email, as an [`axum::Router`] the host mounts
//! ([`router`]).
//!
//! Server-side HTML (maud, which escapes every value it interpolates), no JavaScript, readable
//! on a phone. `GET` only shows; the page's forms `POST` the form token in the body: "Done"
//! completes the task ([`EmailDelegate::complete`]), "Can't do it" records the reason
//! ([`EmailDelegate::decline`]); either way the engine is told at once
//! ([`Engine::delegation_changed`]) and reads the answer through its usual, audited path.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Form, Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use offboard_core::{DelegateVia, Engine, Error, ErrorKind, Ticket};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{EmailDelegate, MAX_REASON_CHARS, TaskPage};

/// The largest form body [`router`] reads by default (16 KiB: a token and a reason of up to
/// [`MAX_REASON_CHARS`] characters, URL-encoded); larger ones get 413.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;

/// The path, under the router's mount point, that the "Can't do it" form posts to:
/// `<task_url>/<id>/cant-do`.
pub const CANT_DO: &str = "cant-do";

#[derive(Debug, Clone)]
struct Pages {
    email: Arc<EmailDelegate>,
    engine: Engine,
}

/// The task page as an [`axum::Router`], for the host to mount at the path of the delegate's
/// `task_url` ([`EmailDelegate::task_path`]), under any prefix:
/// `Router::new().nest(&email.task_path(), web::router(email.clone(), engine))`.
///
/// # Behavior
/// The links the email carries are `<task_url>/<id>?token=<link token>`
/// ([`EmailDelegate::task_page`] is the one place that shape is made); the router answers, under
/// its mount point:
///
/// | request | answer | effect |
/// |---|---|---|
/// | `GET /<id>?token=<link token>` | 200, the task: who is leaving, the app and account, what to remove, the due date, the run's reference; while open, a "Done" form and a "Can't do it" form with a reason | none ([`EmailDelegate::view`]): a link scanner's prefetch changes nothing |
/// | `POST /<id>`, form body `token=<form token>` | 200 "Thank you" | the task is done ([`EmailDelegate::complete`]) and the engine polls it now |
/// | `POST /<id>/cant-do`, form body `token=<form token>&reason=<text>` | 200 "Recorded" | the task is declined with the reason ([`EmailDelegate::decline`]); the engine fails it with that reason in the audit trail |
/// | a token already used (either form, again) | 409 "already answered" page | none |
/// | an expired link or form | 410 "link expired" page | none |
/// | no token, a forged or unknown one, a token for another task | 404 "link not recognised" page | none |
/// | an empty or too long reason, a malformed body | 400 page saying what is wrong | none |
/// | a body over the limit ([`DEFAULT_BODY_LIMIT`], see [`router_with_limit`]) | 413 | none |
/// | any other method | 405 | none |
/// | the delegate's state failed | 503 "try again" page | none |
///
/// Every answer carries `Content-Security-Policy: default-src 'none'` (the page's one inline
/// style allowed by its hash; forms post to the same origin; no framing),
/// `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` (the URL holds a token),
/// `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`. Pages never show a token
/// but in the form's hidden field, and never quote an error's details.
///
/// Time is the delegate's clock. When the engine cannot be told (its store failed), the answer
/// is still recorded and the page still thanks the owner: the engine reads it at its next poll.
pub fn router(email: Arc<EmailDelegate>, engine: Engine) -> Router {
    router_with_limit(email, engine, DEFAULT_BODY_LIMIT)
}

/// [`router`] with a body limit of `max_bytes` (bodies over it get 413).
pub fn router_with_limit(email: Arc<EmailDelegate>, engine: Engine, max_bytes: usize) -> Router {
    Router::new()
        .route("/{id}", get(show).post(done))
        .route(&format!("/{{id}}/{CANT_DO}"), post(cant_do))
        .layer(DefaultBodyLimit::max(max_bytes))
        .layer(axum::middleware::map_response(secure))
        .with_state(Pages { email, engine })
}

/// The stylesheet, inline in every page; allowed by its hash in the CSP.
const CSS: &str = "\
body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
color:#1b1b1b;background:#f4f5f7}\
main{max-width:36rem;margin:0 auto;padding:1.25rem;background:#fff;min-height:100vh;\
box-sizing:border-box}\
h1{font-size:1.4rem;line-height:1.3;margin:.25rem 0 1rem}\
dl{margin:0 0 1.5rem}dt{font-weight:600;color:#555;font-size:.85rem;margin-top:.75rem}\
dd{margin:0;overflow-wrap:anywhere}\
form{margin:1.25rem 0}label{display:block;font-weight:600;margin-bottom:.25rem}\
textarea{width:100%;box-sizing:border-box;font:inherit;min-height:5rem;padding:.5rem}\
button{width:100%;font:inherit;font-weight:600;padding:.85rem;border-radius:.4rem;\
border:1px solid #1d5fbf;background:#1d5fbf;color:#fff;margin-top:.5rem}\
button.secondary{background:#fff;color:#a3261b;border-color:#a3261b}\
.note{color:#555;font-size:.9rem}.status{padding:.75rem;border-radius:.4rem;background:#eef3fb}\
hr{border:0;border-top:1px solid #ddd;margin:1.5rem 0}";

static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = STANDARD.encode(Sha256::digest(CSS.as_bytes()));
    HeaderValue::try_from(format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
});

async fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, CSP.clone());
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[derive(Debug, Deserialize)]
struct LinkQuery {
    token: Option<String>,
}

#[derive(Deserialize)]
struct DoneForm {
    token: String,
}

#[derive(Deserialize)]
struct CantDoForm {
    token: String,
    #[serde(default)]
    reason: String,
}

/// A whole page: `title` as the heading, `body` under it.
fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                meta name="robots" content="noindex, nofollow";
                title { (title) " · offboarding" }
                style { (maud::PreEscaped(CSS)) }
            }
            body {
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    (status, Html(markup.into_string())).into_response()
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%A %-d %B %Y, %H:%M UTC").to_string()
}

/// The page for a refused request, by the error's kind; never quotes the error.
fn refused(e: &Error) -> Response {
    let expired =
        e.kind() == ErrorKind::Unauthenticated && e.context().any(|(k, _)| k == "expired_at");
    match e.kind() {
        _ if expired => page(
            StatusCode::GONE,
            "This link has expired",
            html! {
                p { "The link in your email no longer works. If the access still needs removing, \
                     a newer email (a reminder) has a fresh link; otherwise ask the IT team \
                     that runs offboarding." }
            },
        ),
        ErrorKind::Conflict => page(
            StatusCode::CONFLICT,
            "Already answered",
            html! {
                p { "This task was already answered (done, or can't do it); nothing was changed. \
                     Open the link from your email to see the answer." }
            },
        ),
        ErrorKind::Unauthenticated | ErrorKind::NotFound => unknown(),
        ErrorKind::InvalidInput => page(
            StatusCode::BAD_REQUEST,
            "Please say why",
            html! {
                p { "To record that you can't do it, write a reason of 1 to "
                    (MAX_REASON_CHARS) " characters. Go back, fill in the reason and send again; \
                    nothing was recorded." }
            },
        ),
        _ => {
            tracing::warn!(error = %e, "email task page failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                html! { p { "Something went wrong on our side and nothing was recorded. \
                Try again in a minute." } },
            )
        }
    }
}

fn unknown() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Link not recognised",
        html! {
            p { "This link does not open a task. Check that the whole link from your email was \
                 opened (mail apps sometimes cut long links), or ask the IT team that runs \
                 offboarding." }
        },
    )
}

fn bad_form(rejection: &FormRejection) -> Response {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return page(
            status,
            "Too long",
            html! { p { "What was sent is too long; nothing was recorded. Shorten the reason \
            and send again." } },
        );
    }
    page(
        StatusCode::BAD_REQUEST,
        "Not understood",
        html! { p { "The form could not be read; nothing was recorded. Open the link from \
        your email again." } },
    )
}

/// The details of a task: who, which app and account, what to remove, when, the reference.
fn details(t: &TaskPage) -> Markup {
    let account = t.login.as_deref().unwrap_or(&t.person_email);
    html! {
        dl {
            dt { "Person leaving" }
            dd { (t.person) " (" (t.person_email) ")" }
            dt { "App" }
            dd { (t.app) }
            dt { "Account" }
            dd { (account) }
            dt { "What to remove" }
            dd { "Everything that lets " (t.person) " into " (t.app) ": their account (disable \
                  or delete it), their sign-in sessions, API keys and tokens." }
            dt { "Due" }
            dd { (when(t.due)) }
            dt { "Reference" }
            dd { "Offboarding run " (t.run) ", task " (t.ticket.key) }
        }
    }
}

async fn show(
    State(p): State<Pages>,
    Path(id): Path<String>,
    Query(q): Query<LinkQuery>,
) -> Response {
    let Some(token) = q.token.filter(|t| !t.is_empty()) else {
        return unknown();
    };
    let t = match p.email.view(&token, p.email.now()).await {
        Ok(t) if t.ticket.key == id => t,
        Ok(_) => return unknown(),
        Err(e) => return refused(&e),
    };
    let title = format!("Remove {}'s access to {}", t.person, t.app);
    let body = match (t.form_token(), t.done_at) {
        (Some(form), _) => html! {
            p { (t.person) " is leaving. Please remove their access to " (t.app)
                " by " (when(t.due)) ", then press Done." }
            (details(&t))
            form method="post" action={ "./" (t.ticket.key) } {
                input type="hidden" name="token" value=(form);
                button type="submit" id="done" { "Done: access removed" }
            }
            hr;
            form method="post" action={ "./" (t.ticket.key) "/" (CANT_DO) } {
                input type="hidden" name="token" value=(form);
                label for="reason" { "Can't do it? Say why" }
                textarea id="reason" name="reason" required maxlength=(MAX_REASON_CHARS) {}
                button type="submit" id="cant-do" class="secondary" { "I can't do it" }
            }
            p.note { "This page works until " (when(t.expires)) "." }
        },
        (None, done_at) => {
            let by = t.done_by.as_deref().unwrap_or("the app's owner");
            let at = done_at.map(when).unwrap_or_default();
            html! {
                @if let Some(reason) = &t.declined {
                    p.status { (by) " said on " (at) " that they can't do it: " (reason) }
                } @else {
                    p.status { "Done: " (by) " confirmed on " (at) " that the access is removed." }
                }
                (details(&t))
            }
        }
    };
    page(StatusCode::OK, &title, body)
}

async fn done(
    State(p): State<Pages>,
    Path(id): Path<String>,
    form: Result<Form<DoneForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(f)) => f,
        Err(r) => return bad_form(&r),
    };
    answer(&p, &id, &form.token, None).await
}

async fn cant_do(
    State(p): State<Pages>,
    Path(id): Path<String>,
    form: Result<Form<CantDoForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(f)) => f,
        Err(r) => return bad_form(&r),
    };
    answer(&p, &id, &form.token, Some(&form.reason)).await
}

/// Records the answer for task `id` (done, or declined with a reason) and tells the engine.
async fn answer(p: &Pages, id: &str, token: &str, declined: Option<&str>) -> Response {
    let now = p.email.now();
    match p.email.form_task(token, now) {
        Ok(task) if task == id => {}
        Ok(_) => return unknown(),
        Err(e) => return refused(&e),
    }
    let answered: offboard_core::Result<Ticket> = match declined {
        None => p.email.complete(token, now).await,
        Some(reason) => p.email.decline(token, reason, now).await,
    };
    let ticket = match answered {
        Ok(ticket) => ticket,
        Err(e) => return refused(&e),
    };
    if let Err(e) = p
        .engine
        .delegation_changed(DelegateVia::Email, &ticket.key)
        .await
    {
        tracing::warn!(task = %ticket.key, error = %e, "email task answered; the engine reads it at its next poll");
    }
    match declined {
        None => page(
            StatusCode::OK,
            "Thank you",
            html! {
                p.status { "Recorded: the access is removed. The offboarding run carries on; \
                            you can close this page." }
                p.note { "Task " (ticket.key) }
            },
        ),
        Some(reason) => page(
            StatusCode::OK,
            "Recorded: you can't do it",
            html! {
                p.status { "Your reason was recorded for the offboarding team: " (reason.trim()) }
                p.note { "Task " (ticket.key) ". Someone from IT will follow up; you can close \
                          this page." }
            },
        ),
    }
}
