//! The console's guards over plain HTTP (no browser): sessions, their expiry, CSRF tokens,
//! roles, all enforced by the server whatever a page shows.

use std::sync::Arc;
use std::time::Duration;

use citizencard_console::desk::Desk;
use citizencard_console::{simulated_desk, Console};
use host_lib::holder::items::CardNumber;
use host_lib::holder::{ApplicantRecord, Field};
use host_lib::registry::operators::Role;
use host_lib::registry::{AuditFilter, CardStatus, Station};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| {
                let first = v.split(';').next()?;
                let (k, val) = first.split_once('=')?;
                (k == name && !val.is_empty()).then(|| val.to_owned())
            })
    }
}

/// One HTTP/1.1 request on a fresh connection.
async fn request(base: &str, method: &str, path: &str, cookies: &str, form: Option<&str>) -> Reply {
    let mut s = tokio::net::TcpStream::connect(base).await.unwrap();
    let body = form.unwrap_or("");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {base}\r\nConnection: close\r\n");
    if !cookies.is_empty() {
        req.push_str(&format!("Cookie: {cookies}\r\n"));
    }
    if form.is_some() {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    page[at..at + 64].to_owned()
}

struct Server {
    _dir: tempfile::TempDir,
    console: Arc<Console>,
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn serve(idle: Duration) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let desk = simulated_desk(dir.path()).unwrap();
    desk.add_operator("test", "li", "李", Role::Operator, "operator-pass")
        .unwrap();
    let console = Arc::new(Console::new(desk, idle, false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let c = console.clone();
    tokio::spawn(async move {
        c.serve(listener, async {
            let _ = stopped.await;
        })
        .await
    });
    Server {
        _dir: dir,
        console,
        base,
        stop: Some(stop),
    }
}

/// Logs in; returns the cookie header and the session's CSRF token.
async fn log_in(s: &Server, login: &str, password: &str) -> Option<(String, String)> {
    let page = request(&s.base, "GET", "/login", "", None).await;
    let pre = page.cookie("cc_login").unwrap();
    let token = csrf_of(&page.body);
    let r = request(
        &s.base,
        "POST",
        "/login",
        &format!("cc_login={pre}"),
        Some(&format!("login={login}&password={password}&csrf={token}")),
    )
    .await;
    let session = r.cookie("cc_session")?;
    assert!(r
        .headers
        .iter()
        .any(|(k, v)| k == "set-cookie" && v.contains("HttpOnly; SameSite=Strict")));
    let cookies = format!("cc_session={session}");
    let home = request(&s.base, "GET", "/applicants/new", &cookies, None).await;
    Some((cookies, csrf_of(&home.body)))
}

fn issued_card(desk: &Desk) -> CardNumber {
    let mut r = ApplicantRecord::default();
    for (f, v) in [
        (Field::IdNumber, "330302198503120111"),
        (Field::Name, "测试张一"),
        (Field::Sex, "1"),
        (Field::Ethnicity, "01"),
        (Field::Birthplace, "330302"),
        (Field::BirthDate, "1985-03-12"),
        (Field::Eligibility, "household"),
    ] {
        r.set(f, Some(v.into()));
    }
    let a = Desk::validate(&r, None).unwrap();
    desk.issue("setup", &Station::this_process(), &a, &mut |_| {})
        .unwrap()
        .issued
        .card_number
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_need_a_session_and_a_wrong_password_gets_none() {
    let s = serve(Duration::from_secs(600)).await;
    for path in [
        "/",
        "/applicants/new",
        "/audit",
        "/blacklist.txt",
        "/cards/W00000018",
    ] {
        let r = request(&s.base, "GET", path, "", None).await;
        assert_eq!(
            (r.status, r.header("location")),
            (303, Some("/login")),
            "{path}"
        );
    }
    assert!(log_in(&s, "li", "wrong-password").await.is_none());
    assert!(log_in(&s, "nobody", "operator-pass").await.is_none());
    // The login form without its double-submitted token is refused too.
    let r = request(
        &s.base,
        "POST",
        "/login",
        "",
        Some("login=li&password=operator-pass&csrf=00"),
    )
    .await;
    assert!(r.cookie("cc_session").is_none());
    assert!(log_in(&s, "li", "operator-pass").await.is_some());
    let log = s
        .console
        .app
        .desk
        .open()
        .unwrap()
        .audit_log(&AuditFilter::default())
        .unwrap();
    let actions: Vec<_> = log
        .iter()
        .filter(|e| e.action.starts_with("console"))
        .map(|e| (e.operator.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("li", "console_login_refused"),
            ("nobody", "console_login_refused"),
            ("li", "console_login")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_without_the_sessions_token_changes_nothing() {
    let s = serve(Duration::from_secs(600)).await;
    let card = issued_card(&s.console.app.desk);
    let (cookies, token) = log_in(&s, "li", "operator-pass").await.unwrap();
    let path = format!("/cards/{card}/loss");
    for bad in ["", "csrf=", &format!("csrf={}", "0".repeat(64))] {
        let r = request(&s.base, "POST", &path, &cookies, Some(bad)).await;
        assert!(r.status == 403 || r.status == 422, "{bad}: {}", r.status);
    }
    let status = || s.console.app.desk.open().unwrap().status(&card).unwrap();
    assert_eq!(status(), CardStatus::Active);
    // The role is the server's: an operator's cancellation is refused with the right token.
    let r = request(
        &s.base,
        "POST",
        &format!("/cards/{card}/cancel"),
        &cookies,
        Some(&format!("csrf={token}&reason=moved_away&at_hand=1")),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("主管"));
    assert_eq!(status(), CardStatus::Active);
    // The loss report with the token is done.
    let r = request(
        &s.base,
        "POST",
        &path,
        &cookies,
        Some(&format!("csrf={token}")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(status(), CardStatus::Lost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_and_logging_out_ends_them() {
    let s = serve(Duration::from_millis(700)).await;
    let (cookies, token) = log_in(&s, "li", "operator-pass").await.unwrap();
    assert_eq!(
        request(&s.base, "GET", "/", &cookies, None).await.status,
        200
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let r = request(&s.base, "GET", "/", &cookies, None).await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/login?expired=1"))
    );
    let page = request(&s.base, "GET", "/login?expired=1", "", None).await;
    assert!(page.body.contains("会话已过期"), "the page says why");

    let (cookies, token2) = log_in(&s, "li", "operator-pass").await.unwrap();
    assert_ne!(token, token2, "a new session, a new token");
    let r = request(
        &s.base,
        "POST",
        "/logout",
        &cookies,
        Some(&format!("csrf={token2}")),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        request(&s.base, "GET", "/", &cookies, None).await.status,
        303
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuance_streams_its_progress_as_server_sent_events() {
    let s = serve(Duration::from_secs(600)).await;
    let (cookies, _) = log_in(&s, "li", "operator-pass").await.unwrap();
    let id = cookies.trim_start_matches("cc_session=");
    let session = s.console.app.sessions.get(id).unwrap();
    let mut r = ApplicantRecord::default();
    for (f, v) in [
        (Field::IdNumber, "330381199207080186"),
        (Field::Name, "测试李二"),
        (Field::Sex, "2"),
        (Field::Ethnicity, "01"),
        (Field::Birthplace, "330381"),
        (Field::BirthDate, "1992-07-08"),
        (Field::Eligibility, "household"),
    ] {
        r.set(f, Some(v.into()));
    }
    let applicant = Desk::validate(&r, None).unwrap();
    let job = s
        .console
        .app
        .jobs
        .start(s.console.app.desk.clone(), &session, applicant);
    // The stream ends when the issuance has ended; its last event says how.
    let reply = tokio::time::timeout(
        Duration::from_secs(60),
        request(
            &s.base,
            "GET",
            &format!("/jobs/{job}/events"),
            &cookies,
            None,
        ),
    )
    .await
    .expect("the event stream ends with the issuance");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let events: Vec<serde_json::Value> = reply
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let last = events.last().unwrap();
    assert_eq!(last["finished"]["outcome"], "issued", "{last}");
    assert!(last["done"].as_u64().unwrap() > 50, "{last}");
    // Another operator's session does not see this issuance.
    let other = s
        .console
        .app
        .sessions
        .open("wang", "王", Role::Operator)
        .unwrap();
    let r = request(
        &s.base,
        "GET",
        &format!("/jobs/{job}/events"),
        &format!("cc_session={other}"),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_supervisor_lifts_a_loss_report() {
    let s = serve(Duration::from_secs(600)).await;
    s.console
        .app
        .desk
        .add_operator("test", "wang", "王", Role::Supervisor, "supervisor-pass")
        .unwrap();
    let card = issued_card(&s.console.app.desk);
    let status = || s.console.app.desk.open().unwrap().status(&card).unwrap();
    let (op, op_token) = log_in(&s, "li", "operator-pass").await.unwrap();
    let r = request(
        &s.base,
        "POST",
        &format!("/cards/{card}/loss"),
        &op,
        Some(&format!("csrf={op_token}")),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(status(), CardStatus::Lost);
    let revoke = format!("/cards/{card}/revoke");
    let r = request(
        &s.base,
        "POST",
        &revoke,
        &op,
        Some(&format!("csrf={op_token}")),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(status(), CardStatus::Lost, "still blacklisted");
    let (sup, sup_token) = log_in(&s, "wang", "supervisor-pass").await.unwrap();
    // One session's token is no good in another's.
    let r = request(
        &s.base,
        "POST",
        &revoke,
        &sup,
        Some(&format!("csrf={op_token}")),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(status(), CardStatus::Lost);
    let r = request(
        &s.base,
        "POST",
        &revoke,
        &sup,
        Some(&format!("csrf={sup_token}")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(status(), CardStatus::Active);
    let log = s
        .console
        .app
        .desk
        .open()
        .unwrap()
        .audit_log(&AuditFilter {
            card: Some(card.clone()),
            ..AuditFilter::default()
        })
        .unwrap();
    let who: Vec<_> = log
        .iter()
        .filter(|e| e.action.contains("loss"))
        .map(|e| (e.operator.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(who.len(), 2, "{who:?}");
    assert_eq!(who[0].0, "li");
    assert_eq!(who[1].0, "wang");
}
