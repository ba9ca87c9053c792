//! The HTTP handlers: read the request, check the session, its CSRF token and role, call one
//! [`Desk`](crate::desk::Desk) function (on a blocking thread), render a page.

// A refused check returns the page to send instead (`Err(Response)`); a response is axum's size.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use host_lib::holder::items::CardNumber;
use host_lib::holder::{ApplicantRecord, CitizenId, Field};
use host_lib::registry::{CancelReason, ReplaceReason};
use maud::Markup;
use serde::Deserialize;
use tokio_stream::StreamExt;

use crate::auth::{self, cookie, set_cookie, Session, Sessions, LOGIN_COOKIE, SESSION_COOKIE};
use crate::desk::Desk;
use crate::i18n::{Lang, Words};
use crate::jobs::Jobs;
use crate::pages::{self, notice, yuan};

/// What every handler shares.
pub struct App {
    /// The station.
    pub desk: Arc<Desk>,
    /// Who is logged in.
    pub sessions: Sessions,
    /// Issuances.
    pub jobs: Jobs,
    /// Started with `--demo`.
    pub demo: bool,
}

type Shared = State<Arc<App>>;

/// The console's routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/lang", get(language))
        .route("/applicants/new", get(applicant_page))
        .route("/applicants", post(applicant_submit))
        .route("/jobs/{id}", get(job_page))
        .route("/jobs/{id}/events", get(job_events))
        .route("/jobs/{id}/resume", post(job_resume))
        .route("/lookup", get(lookup))
        .route("/cards/{card}", get(card_page))
        .route("/cards/{card}/statement", get(statement))
        .route("/cards/{card}/{action}", post(card_action))
        .route("/audit", get(audit))
        .route("/blacklist.txt", get(blacklist))
        .with_state(app)
}

/// The request's language, path and session.
struct Ctx {
    lang: Lang,
    path: String,
    session: Option<Session>,
    /// A session cookie came with the request, but its session is gone (expired, logged out).
    stale: bool,
}

impl Ctx {
    fn new(app: &App, headers: &HeaderMap, path: &str) -> Ctx {
        let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
        let id = cookie(cookies, SESSION_COOKIE).filter(|id| !id.is_empty());
        let session = id.and_then(|id| app.sessions.get(id));
        Ctx {
            lang: Lang::from_cookie(cookie(cookies, "cc_lang")),
            path: path.to_owned(),
            stale: id.is_some() && session.is_none(),
            session,
        }
    }
    fn w(&self) -> &'static Words {
        self.lang.t()
    }
    fn page(&self, title: &str, body: Markup) -> Response {
        Html(pages::layout(self.lang, self.session.as_ref(), &self.path, title, body).into_string())
            .into_response()
    }
    fn page_status(&self, status: StatusCode, title: &str, body: Markup) -> Response {
        (status, self.page(title, body)).into_response()
    }
    /// The session, or the login page (with a note that it expired when there was a cookie).
    fn require(&self) -> Result<&Session, Response> {
        self.session.as_ref().ok_or_else(|| {
            let to = if self.stale {
                "/login?expired=1"
            } else {
                "/login"
            };
            Redirect::to(to).into_response()
        })
    }
    /// The session, its CSRF token checked.
    fn require_post(&self, token: &str) -> Result<&Session, Response> {
        let s = self.require()?;
        if auth::tokens_equal(&s.csrf, token) {
            Ok(s)
        } else {
            Err(self.page_status(
                StatusCode::FORBIDDEN,
                self.w().csrf_failed,
                pages::problem(self.w().csrf_failed),
            ))
        }
    }
}

/// Runs blocking desk work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("the request's worker failed: {e}"))?
}

async fn home(State(app): Shared, headers: HeaderMap) -> Response {
    let cx = Ctx::new(&app, &headers, "/");
    let s = match cx.require() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let body = pages::home(cx.w(), s, &app.desk.cards.describe(), app.demo);
    cx.page(cx.w().home, body)
}

#[derive(Deserialize)]
struct LoginQuery {
    expired: Option<String>,
}

async fn login_page(
    State(app): Shared,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let cx = Ctx::new(&app, &headers, "/login");
    let note = q.expired.is_some().then_some(cx.w().session_expired);
    login_form(&cx, note)
}

fn login_form(cx: &Ctx, message: Option<&str>) -> Response {
    let token = match auth::random_token() {
        Ok(t) => t,
        Err(e) => return cx.page(cx.w().login, pages::problem(&format!("{e:#}"))),
    };
    let mut r = cx.page(cx.w().login, pages::login(cx.w(), &token, message));
    if let Ok(v) = set_cookie(LOGIN_COOKIE, &token, None).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
struct LoginForm {
    login: String,
    password: String,
    csrf: String,
}

async fn login(State(app): Shared, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let cx = Ctx::new(&app, &headers, "/login");
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    if !cookie(cookies, LOGIN_COOKIE).is_some_and(|c| auth::tokens_equal(c, &f.csrf)) {
        return login_form(&cx, Some(cx.w().csrf_failed));
    }
    let desk = app.desk.clone();
    let login = f.login.trim().to_owned();
    let checked = blocking(move || {
        let op = desk.operator(&login)?;
        let ok = op.filter(|o| {
            o.disabled_at.is_none() && auth::password_matches(&f.password, &o.password_hash)
        });
        let action = if ok.is_some() {
            "console_login"
        } else {
            "console_login_refused"
        };
        if !login.is_empty() {
            desk.console_event(&login, action)?;
        }
        Ok(ok)
    })
    .await;
    match checked {
        Ok(Some(op)) => match app.sessions.open(&op.login, &op.display_name, op.role) {
            Ok(id) => {
                let mut r = Redirect::to("/").into_response();
                for c in [
                    set_cookie(SESSION_COOKIE, &id, None),
                    set_cookie(LOGIN_COOKIE, "", Some(0)),
                ] {
                    if let Ok(v) = c.parse() {
                        r.headers_mut().append(header::SET_COOKIE, v);
                    }
                }
                r
            }
            Err(e) => login_form(&cx, Some(&format!("{e:#}"))),
        },
        Ok(None) => login_form(&cx, Some(cx.w().login_failed)),
        Err(e) => login_form(&cx, Some(&format!("{e:#}"))),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(app): Shared, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    let cx = Ctx::new(&app, &headers, "/logout");
    if let Err(r) = cx.require_post(&f.csrf) {
        return r;
    }
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    if let Some(s) = cookie(cookies, SESSION_COOKIE).and_then(|id| app.sessions.close(id)) {
        let desk = app.desk.clone();
        let _ = blocking(move || desk.console_event(&s.login, "console_logout")).await;
    }
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = set_cookie(SESSION_COOKIE, "", Some(0)).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
struct LangQuery {
    to: String,
    back: Option<String>,
}

async fn language(Query(q): Query<LangQuery>) -> Response {
    let back = q
        .back
        .filter(|b| b.starts_with('/') && !b.starts_with("//"))
        .unwrap_or_else(|| "/".into());
    let value = if q.to == "en" { "en" } else { "zh" };
    let mut r = Redirect::to(&back).into_response();
    if let Ok(v) = set_cookie("cc_lang", value, Some(365 * 24 * 3600)).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn applicant_page(State(app): Shared, headers: HeaderMap) -> Response {
    let cx = Ctx::new(&app, &headers, "/applicants/new");
    let s = match cx.require() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let body = pages::applicant_form(
        cx.w(),
        &s.csrf,
        &ApplicantRecord::default(),
        &BTreeMap::new(),
        None,
    );
    cx.page(cx.w().applicant_entry, body)
}

async fn applicant_submit(State(app): Shared, headers: HeaderMap, mut form: Multipart) -> Response {
    let cx = Ctx::new(&app, &headers, "/applicants/new");
    let mut record = ApplicantRecord::default();
    let mut photo: Option<Vec<u8>> = None;
    let mut token = String::new();
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                match name.as_str() {
                    "photo" => match field.bytes().await {
                        Ok(b) if !b.is_empty() => photo = Some(b.to_vec()),
                        Ok(_) => {}
                        Err(e) => {
                            return cx.page(cx.w().applicant_entry, pages::problem(&e.to_string()))
                        }
                    },
                    _ => {
                        let text = field.text().await.unwrap_or_default();
                        if name == "csrf" {
                            token = text;
                        } else if let Some(f) = Field::from_column(&name) {
                            record.set(f, Some(text));
                        }
                    }
                }
            }
            Ok(None) => break,
            Err(e) => return cx.page(cx.w().applicant_entry, pages::problem(&e.to_string())),
        }
    }
    let s = match cx.require_post(&token) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match Desk::validate(&record, photo) {
        Ok(applicant) => {
            let id = app.jobs.start(app.desk.clone(), s, applicant);
            Redirect::to(&format!("/jobs/{id}")).into_response()
        }
        Err(errors) => {
            let mut by_field = BTreeMap::new();
            for e in &errors.0 {
                by_field
                    .entry(e.field)
                    .or_insert_with(|| e.problem.to_string());
            }
            let body = pages::applicant_form(
                cx.w(),
                &s.csrf,
                &record,
                &by_field,
                Some(notice("error", cx.w().fix_fields)),
            );
            cx.page_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                cx.w().applicant_entry,
                body,
            )
        }
    }
}

async fn job_page(State(app): Shared, headers: HeaderMap, Path(id): Path<u64>) -> Response {
    let cx = Ctx::new(&app, &headers, &format!("/jobs/{id}"));
    let s = match cx.require() {
        Ok(s) => s,
        Err(r) => return r,
    };
    match app.jobs.get(id).filter(|j| j.login == s.login) {
        Some(job) => {
            let state = job.state.borrow().clone();
            let body = pages::job(cx.w(), &s.csrf, id, &job.applicant, &state);
            cx.page(cx.w().issuing, body)
        }
        None => cx.page_status(
            StatusCode::NOT_FOUND,
            cx.w().not_found,
            pages::problem(cx.w().not_found),
        ),
    }
}

async fn job_events(State(app): Shared, headers: HeaderMap, Path(id): Path<u64>) -> Response {
    let cx = Ctx::new(&app, &headers, "");
    let s = match cx.require() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(job) = app.jobs.get(id).filter(|j| j.login == s.login) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let stream = tokio_stream::wrappers::WatchStream::new(job.state.clone()).map(|state| {
        Ok::<_, Infallible>(
            Event::default().data(serde_json::to_string(&state).unwrap_or_default()),
        )
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn job_resume(
    State(app): Shared,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let cx = Ctx::new(&app, &headers, &format!("/jobs/{id}"));
    let s = match cx.require_post(&f.csrf) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match app.jobs.get(id).filter(|j| j.login == s.login) {
        Some(job) => {
            let next = app.jobs.start(app.desk.clone(), s, job.applicant.clone());
            Redirect::to(&format!("/jobs/{next}")).into_response()
        }
        None => cx.page_status(
            StatusCode::NOT_FOUND,
            cx.w().not_found,
            pages::problem(cx.w().not_found),
        ),
    }
}

#[derive(Deserialize)]
struct LookupQuery {
    q: String,
}

async fn lookup(State(app): Shared, headers: HeaderMap, Query(q): Query<LookupQuery>) -> Response {
    let cx = Ctx::new(&app, &headers, "/lookup");
    if let Err(r) = cx.require() {
        return r;
    }
    let text = q.q.trim().to_uppercase();
    if let Ok(n) = CardNumber::parse(&text) {
        return Redirect::to(&format!("/cards/{n}")).into_response();
    }
    match CitizenId::parse(&text) {
        Ok(id) => {
            let desk = app.desk.clone();
            match blocking(move || desk.person(&id)).await {
                Ok(p) => cx.page(cx.w().person, pages::person(cx.w(), &p)),
                Err(e) => not_found(&cx, &format!("{e:#}")),
            }
        }
        Err(e) => not_found(&cx, &format!("{text}: {e}")),
    }
}

fn not_found(cx: &Ctx, message: &str) -> Response {
    cx.page_status(
        StatusCode::NOT_FOUND,
        cx.w().not_found,
        pages::problem(&format!("{}{message}", cx.w().not_found)),
    )
}

async fn card_page(State(app): Shared, headers: HeaderMap, Path(card): Path<String>) -> Response {
    let cx = Ctx::new(&app, &headers, &format!("/cards/{card}"));
    show_card(&app, &cx, &card, None).await
}

async fn show_card(app: &App, cx: &Ctx, card: &str, message: Option<Markup>) -> Response {
    let s = match cx.require() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let n = match CardNumber::parse(card) {
        Ok(n) => n,
        Err(e) => return not_found(cx, &format!("{card}: {e}")),
    };
    let desk = app.desk.clone();
    let found = blocking(move || Ok((desk.card(&n)?, desk.replace_quote(&n)?))).await;
    match found {
        Ok(((details, holder), quote)) => {
            let body = pages::card(cx.w(), &s.csrf, &details, &holder, &quote, message);
            cx.page(cx.w().card, body)
        }
        Err(e) => not_found(cx, &format!("{e:#}")),
    }
}

async fn statement(State(app): Shared, headers: HeaderMap, Path(card): Path<String>) -> Response {
    let cx = Ctx::new(&app, &headers, &format!("/cards/{card}/statement"));
    if let Err(r) = cx.require() {
        return r;
    }
    let n = match CardNumber::parse(&card) {
        Ok(n) => n,
        Err(e) => return not_found(&cx, &format!("{card}: {e}")),
    };
    let desk = app.desk.clone();
    match blocking(move || desk.loss_statement(&n)).await {
        Ok(st) => cx.page(cx.w().loss_statement, pages::statement(cx.w(), &st)),
        Err(e) => not_found(&cx, &format!("{e:#}")),
    }
}

/// What a receipt shows: the action, then its lines.
type Receipt = (String, Vec<(&'static str, String)>);

#[derive(Deserialize)]
struct ActionForm {
    csrf: String,
    amount: Option<String>,
    reason: Option<String>,
    at_hand: Option<String>,
}

/// Report lost, revoke, replace, cancel: the role first, then the card held for this operator,
/// then one desk call; its refusal or failure shown on the card's page.
async fn card_action(
    State(app): Shared,
    headers: HeaderMap,
    Path((card, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    let cx = Ctx::new(&app, &headers, &format!("/cards/{card}"));
    let s = match cx.require_post(&f.csrf) {
        Ok(s) => s.clone(),
        Err(r) => return r,
    };
    let w = cx.w();
    let n = match CardNumber::parse(&card) {
        Ok(n) => n,
        Err(e) => return not_found(&cx, &format!("{card}: {e}")),
    };
    let amount = f.amount.clone().unwrap_or_default();
    let supervisor_only = matches!(action.as_str(), "revoke" | "replace" | "cancel");
    if supervisor_only && !s.is_supervisor() {
        let m = notice("error", w.needs_supervisor);
        return (
            StatusCode::FORBIDDEN,
            show_card(&app, &cx, &card, Some(m)).await,
        )
            .into_response();
    }
    let desk = app.desk.clone();
    let op = s.login.clone();
    let reason = f.reason.clone().unwrap_or_default();
    let at_hand = f.at_hand.is_some();
    let station = s.station.clone();
    let action2 = action.clone();
    let card_number = n.to_string();
    let done = blocking(move || -> anyhow::Result<Result<Receipt, String>> {
        let _hold = match desk.hold(n.as_str(), &op) {
            Ok(h) => h,
            Err(busy) => return Ok(Err(w.busy_message(&busy.what, &busy.by))),
        };
        let r = match action2.as_str() {
            "loss" => desk.report_loss(&op, &n).map(|(at, balance)| {
                (
                    w.report_loss.to_owned(),
                    vec![(w.reported_at, at), (w.balance, yuan(balance))],
                )
            }),
            "load" => host_lib::terminal::parse_yuan(&amount)
                .map_err(|e| anyhow::anyhow!("{amount:?}: {e}"))
                .and_then(|cents| desk.load(&op, &n, cents).map(|b| (cents, b)))
                .map(|(cents, balance)| {
                    (
                        w.load.to_owned(),
                        vec![
                            (w.amount, yuan(i64::from(cents))),
                            (w.balance, yuan(balance)),
                        ],
                    )
                }),
            "chip" => desk.read_purse(&op, &n).map(|(cents, log)| {
                let mut rows = vec![(w.chip_balance, yuan(i64::from(cents)))];
                rows.extend(log.iter().map(|r| {
                    let sign = if r.is_load() { "+" } else { "-" };
                    (
                        w.chip_log_entry,
                        format!(
                            "{} {} {sign}{} ({})",
                            r.date_time(),
                            r.type_name(),
                            yuan(i64::from(r.amount)),
                            hex::encode_upper(r.terminal_id)
                        ),
                    )
                }));
                (w.read_chip.to_owned(), rows)
            }),
            "revoke" => desk
                .revoke_loss(&op, &n)
                .map(|()| (w.revoke_loss.to_owned(), vec![])),
            "replace" => {
                let reason = ReplaceReason::parse(&reason)
                    .ok_or_else(|| anyhow::anyhow!("replacement reason {reason:?}"))?;
                desk.replace(&op, &station, &n, reason).map(|o| {
                    (
                        w.replace.to_owned(),
                        vec![
                            (
                                w.replace_reason,
                                pages::replace_reason(w, reason).to_owned(),
                            ),
                            (w.new_card, o.new_card.to_string()),
                            (w.fee, yuan(i64::from(o.fee_cents.unwrap_or(0)))),
                            (w.carry_over, yuan(o.carry_over.credited_cents)),
                        ],
                    )
                })
            }
            "cancel" => {
                let reason = CancelReason::parse(&reason)
                    .ok_or_else(|| anyhow::anyhow!("cancellation reason {reason:?}"))?;
                desk.cancel(&op, &n, reason, at_hand).map(|o| {
                    (
                        w.cancel.to_owned(),
                        vec![
                            (w.cancel_reason, pages::cancel_reason(w, reason).to_owned()),
                            (w.refund, yuan(o.refund_cents.unwrap_or(0))),
                        ],
                    )
                })
            }
            other => Err(anyhow::anyhow!("unknown action {other:?}")),
        };
        Ok(r.map_err(|e| format!("{}{}", w.failed, crate::desk::chain(&e))))
    })
    .await;
    match done {
        Ok(Ok((what, rows))) => {
            let at = time::OffsetDateTime::now_utc()
                .to_offset(host_lib::holder::CHINA_TIME)
                .format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute]:[second] (UTC+8)"
                ))
                .unwrap_or_default();
            let operator = format!("{} ({})", s.display_name, s.login);
            let body = pages::receipt(w, &what, &card_number, &rows, &operator, &at);
            cx.page(w.receipt, body)
        }
        Ok(Err(refused)) => {
            let m = notice("error", &refused);
            (
                StatusCode::CONFLICT,
                show_card(&app, &cx, &card, Some(m)).await,
            )
                .into_response()
        }
        Err(e) => cx.page(w.failed, pages::problem(&format!("{}{e:#}", w.failed))),
    }
}

async fn audit(State(app): Shared, headers: HeaderMap) -> Response {
    let cx = Ctx::new(&app, &headers, "/audit");
    if let Err(r) = cx.require() {
        return r;
    }
    let desk = app.desk.clone();
    match blocking(move || Ok((desk.audit_log(200)?, desk.verify()?))).await {
        Ok((entries, verify)) => cx.page(cx.w().audit, pages::audit(cx.w(), &entries, &verify)),
        Err(e) => cx.page(cx.w().audit, pages::problem(&format!("{e:#}"))),
    }
}

async fn blacklist(State(app): Shared, headers: HeaderMap) -> Response {
    let cx = Ctx::new(&app, &headers, "/blacklist.txt");
    if let Err(r) = cx.require() {
        return r;
    }
    let desk = app.desk.clone();
    match blocking(move || desk.blacklist_text()).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        Err(e) => cx.page(cx.w().blacklist_export, pages::problem(&format!("{e:#}"))),
    }
}
