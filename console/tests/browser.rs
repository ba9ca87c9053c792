//! The counter console in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven through WebDriver (fantoccini) against the console served in
//! process on simulated cards, with a temporary registry.
//!
//! Each test starts chromedriver on a free localhost port and stops it (its process group, so no
//! browser is left behind), serves the console on another free port, and keeps a screenshot of
//! every step under `target/console-screenshots/`. Without Chromium the tests print a note and
//! pass, unless `CITIZENCARD_BROWSER=1` (set by scripts/test.sh), where they fail.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use citizencard_console::{simulated_desk, Console};
use fantoccini::{Client, ClientBuilder, Locator};
use host_lib::holder::items::CardNumber;
use host_lib::holder::{ApplicantRecord, Field};
use host_lib::registry::operators::Role;
use host_lib::registry::{AuditFilter, CardStatus, Station};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const OPERATOR: (&str, &str) = ("li", "operator-pass-1");
const SUPERVISOR: (&str, &str) = ("wang", "supervisor-pass-2");
/// One browser at a time: the machine has two cores.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether the browser is here; with CITIZENCARD_BROWSER=1 its absence fails the test.
fn browser_available() -> bool {
    let here = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !here {
        assert!(
            std::env::var("CITIZENCARD_BROWSER").as_deref() != Ok("1"),
            "CITIZENCARD_BROWSER=1 but {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install \
             chromium chromium-driver fonts-noto-cjk)"
        );
        eprintln!(
            "note: browser tests skipped: {CHROMIUM} / {CHROMEDRIVER} not installed (set \
             CITIZENCARD_BROWSER=1 to make this a failure)"
        );
    }
    here
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver in its own process group, killed with it.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let pgid = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &pgid]).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A sample applicant of test-vectors/applicants/sample.csv, by ID number.
fn sample(id: &str) -> ApplicantRecord {
    let text = std::fs::read_to_string(repo().join("test-vectors/applicants/sample.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row = lines.find(|l| l.starts_with(id)).unwrap();
    let mut r = ApplicantRecord::default();
    for (k, v) in header.iter().zip(row.split(',')) {
        r.set(Field::from_column(k).unwrap(), Some(v.to_owned()));
    }
    r
}

struct Harness {
    _dir: tempfile::TempDir,
    console: Arc<Console>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _driver: Driver,
    c: Client,
    base: String,
    name: &'static str,
    step: usize,
    shots: PathBuf,
}

impl Harness {
    async fn start(name: &'static str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let desk = simulated_desk(dir.path()).unwrap();
        desk.add_operator("test", OPERATOR.0, "李柜员", Role::Operator, OPERATOR.1)
            .unwrap();
        desk.add_operator(
            "test",
            SUPERVISOR.0,
            "王主管",
            Role::Supervisor,
            SUPERVISOR.1,
        )
        .unwrap();
        let console = Arc::new(Console::new(desk, Duration::from_secs(600), false));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = console.clone();
        let server = tokio::spawn(async move {
            served
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
        });

        let port = free_port();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = Driver(cmd.spawn().expect("starting chromedriver"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = dir.path().join("chromium-profile");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1200,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session with headless Chromium");
        let shots = repo().join("target/console-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        // This test's screenshots of an earlier run go: the directory shows this run only.
        for e in std::fs::read_dir(&shots).unwrap().flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}-"))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Harness {
            _dir: dir,
            console,
            stop: Some(stop),
            server: Some(server),
            _driver: driver,
            c,
            base,
            name,
            step: 0,
            shots,
        }
    }

    async fn finish(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.c.clone().close().await;
        if let Some(s) = self.server.take() {
            s.await.unwrap().unwrap();
        }
    }

    async fn shot(&mut self, what: &str) {
        self.step += 1;
        let png = self.c.screenshot().await.unwrap();
        let path = self
            .shots
            .join(format!("{}-{:02}-{what}.png", self.name, self.step));
        std::fs::write(&path, png).unwrap();
    }

    async fn goto(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    async fn css(&self, sel: &str) -> fantoccini::elements::Element {
        self.c
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(sel))
            .await
            .unwrap_or_else(|e| panic!("{sel}: {e}"))
    }

    async fn text(&self, sel: &str) -> String {
        self.css(sel).await.text().await.unwrap()
    }

    async fn click(&self, sel: &str) {
        self.css(sel).await.click().await.unwrap();
    }

    async fn type_in(&self, sel: &str, text: &str) {
        let e = self.css(sel).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn log_in(&mut self, (login, password): (&str, &str)) {
        self.goto("/login").await;
        self.type_in("#login", login).await;
        self.type_in("#password", password).await;
        self.shot(&format!("login-{login}")).await;
        self.click("#submit").await;
        let who = self.text("#who").await;
        assert!(who.contains(login), "{who}");
    }

    async fn log_out(&self) {
        self.click("#logout").await;
        self.css("#login").await;
    }

    /// Fills the applicant form with `r` and its photo.
    async fn enter(&self, r: &ApplicantRecord, photo: Option<&Path>) {
        self.goto("/applicants/new").await;
        for f in [
            Field::IdNumber,
            Field::Name,
            Field::Ethnicity,
            Field::Birthplace,
            Field::BirthDate,
            Field::Phone,
            Field::Address,
        ] {
            if let Some(v) = r.get(f) {
                self.type_in(&format!("#{}", f.column()), v).await;
            }
        }
        for f in [Field::Sex, Field::CardClass, Field::Eligibility] {
            if let Some(v) = r.get(f) {
                self.css(&format!("#{}", f.column()))
                    .await
                    .select_by_value(v)
                    .await
                    .unwrap();
            }
        }
        if let Some(p) = photo {
            let abs = std::fs::canonicalize(p).unwrap();
            self.css("#photo")
                .await
                .send_keys(abs.to_str().unwrap())
                .await
                .unwrap();
            // The preview shows the chosen photo before anything is sent.
            self.c
                .wait()
                .at_most(Duration::from_secs(10))
                .for_element(Locator::Css("#preview:not([hidden])"))
                .await
                .unwrap();
        }
    }

    fn status(&self, card: &CardNumber) -> CardStatus {
        self.console.app.desk.open().unwrap().status(card).unwrap()
    }
}

/// An operator issues a card to a sample applicant (the card pulled out mid-way, then resumed
/// from the page) and takes a loss report; a supervisor replaces it and cancels the new card.
/// The audit log names who did what.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_life_at_the_counter() {
    if !browser_available() {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
    let mut h = Harness::start("life").await;
    h.log_in(OPERATOR).await;

    let applicant = sample("330381199207080186");
    let photo = repo().join("test-vectors/applicants/photos/p02.jpg");
    h.enter(&applicant, Some(&photo)).await;
    h.shot("applicant-entered").await;
    // The card is pulled out of the reader after 30 APDUs of its issuance.
    h.console.app.desk.cards.pull_next_after(30);
    h.click("#issue").await;
    let failed = h.text("#result").await;
    assert!(failed.contains("pulled out"), "{failed}");
    h.shot("card-pulled").await;
    h.click("#resume").await;
    let issued = h.text("#result.ok").await;
    assert!(issued.contains("发卡成功"), "{issued}");
    h.shot("issued-after-resume").await;
    let card = CardNumber::parse(&h.text("#card-number").await).unwrap();
    assert_eq!(h.status(&card), CardStatus::Active);

    h.click("#card-link").await;
    assert_eq!(h.text("#status").await, "正常");
    h.shot("card-page").await;
    h.type_in("#load-amount", "50.00").await;
    h.click("#load").await;
    let done = h.text("#receipt").await;
    assert!(done.contains("充值") && done.contains("50.00"), "{done}");
    h.shot("load-receipt").await;
    h.goto(&format!("/cards/{card}")).await;
    assert_eq!(h.text("#balance").await, "50.00");
    h.click("#read-chip").await;
    let chip = h.text("#receipt").await;
    assert!(
        chip.contains("卡内余额\n50.00") || chip.contains("卡内余额 50.00"),
        "{chip}"
    );
    assert!(
        chip.contains("+50.00"),
        "the load in the card's log: {chip}"
    );
    h.shot("chip-read").await;
    h.goto(&format!("/cards/{card}")).await;
    h.click("#report-loss").await;
    let done = h.text("#result").await;
    assert!(done.contains("挂失"), "{done}");
    h.shot("loss-receipt").await;
    assert_eq!(h.status(&card), CardStatus::Lost);
    // The loss statement, the blacklist for terminals, the lookup by ID number.
    h.goto(&format!("/cards/{card}")).await;
    h.click("#statement").await;
    let statement = h.text("main").await;
    assert!(statement.contains("挂失损失说明"), "{statement}");
    h.shot("loss-statement").await;
    h.goto("/blacklist.txt").await;
    let list = h.c.source().await.unwrap();
    assert!(list.contains(card.as_str()), "{list}");
    h.goto("/").await;
    h.type_in("#q", "330381199207080186").await;
    h.css("#q").await.send_keys("\u{E007}").await.unwrap(); // Enter
    let cards = h.text("#cards").await;
    assert!(
        cards.contains(card.as_str()) && cards.contains("挂失"),
        "{cards}"
    );
    h.shot("lookup-by-id").await;
    h.log_out().await;

    h.log_in(SUPERVISOR).await;
    h.goto(&format!("/cards/{card}")).await;
    assert_eq!(h.text("#status").await, "挂失");
    let carried = h.text("#carry-over").await;
    assert_eq!(carried, "50.00", "the ledger balance moves to the new card");
    h.shot("lost-card-page").await;
    h.click("#replace").await;
    let done = h.text("#receipt").await;
    assert!(done.contains("补换卡") && done.contains("50.00"), "{done}");
    h.shot("replace-receipt").await;
    assert_eq!(h.status(&card), CardStatus::Cancelled);
    let details = h.console.app.desk.card(&card).unwrap().0;
    let new = CardNumber::parse(details.card.replaced_by.as_deref().unwrap()).unwrap();
    assert_eq!(h.status(&new), CardStatus::Active);

    h.goto(&format!("/cards/{new}")).await;
    assert_eq!(h.text("#balance").await, "50.00", "carried over");
    h.css("#cancel-reason")
        .await
        .select_by_value("moved_away")
        .await
        .unwrap();
    h.click("#cancel").await;
    let done = h.text("#receipt").await;
    assert!(
        done.contains("注销") && done.contains("50.00"),
        "refund: {done}"
    );
    h.shot("cancel-receipt").await;
    assert_eq!(h.status(&new), CardStatus::Cancelled);

    h.goto("/audit").await;
    h.css("#audit").await;
    h.shot("audit").await;
    // The chain check on the audit page: the whole life above verifies clean.
    let verdict = h.text("#verify").await;
    assert!(
        verdict.contains("审计链完整"),
        "audit chain check: {verdict}"
    );
    let log = h
        .console
        .app
        .desk
        .open()
        .unwrap()
        .audit_log(&AuditFilter::default())
        .unwrap();
    let by = |action: &str| -> Vec<String> {
        log.iter()
            .filter(|e| e.action.contains(action))
            .map(|e| e.operator.clone())
            .collect()
    };
    assert!(by("console_login").contains(&"li".to_string()));
    assert!(by("console_login").contains(&"wang".to_string()));
    assert!(by("loss").iter().any(|o| o == "li"), "{log:#?}");
    assert!(by("cancel").iter().any(|o| o == "wang"), "{log:#?}");
    h.finish().await;
}

/// A mistyped ID number is refused with its message next to the field; nothing is recorded.
/// The language switch turns the page into English.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_id_number_is_refused_with_its_message() {
    if !browser_available() {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
    let mut h = Harness::start("bad-id").await;
    h.log_in(OPERATOR).await;
    let mut applicant = sample("330324197811300257");
    // The last digit is the ISO 7064 check character: 7 is wrong here.
    applicant.set(Field::IdNumber, Some("330324197811300250".into()));
    h.enter(&applicant, None).await;
    h.click("#issue").await;
    let message = h.text("#id_number-error").await;
    assert!(message.contains("check character"), "{message}");
    assert_eq!(
        h.css("#id_number")
            .await
            .attr("class")
            .await
            .unwrap()
            .as_deref(),
        Some("bad")
    );
    h.shot("refused").await;
    let id = host_lib::holder::CitizenId::parse("330324197811300257").unwrap();
    assert!(h.console.app.desk.person(&id).is_err(), "nothing recorded");
    h.click("#lang").await;
    let label = h.text("label[for=id_number]").await;
    assert_eq!(label, "ID number");
    h.shot("english").await;
    h.finish().await;
}

/// An operator (not a supervisor) is refused a cancellation; and a card another operator is
/// working on is refused with a clear message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_an_operator_cancelling_and_a_card_in_use() {
    if !browser_available() {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
    let mut h = Harness::start("refusals").await;
    // A card issued beforehand, through the same desk.
    let record = sample("330302198503120111");
    let applicant = citizencard_console::desk::Desk::validate(&record, None).unwrap();
    let station = Station::this_process();
    let card = h
        .console
        .app
        .desk
        .issue("setup", &station, &applicant, &mut |_| {})
        .unwrap()
        .issued
        .card_number;

    h.log_in(OPERATOR).await;
    h.goto(&format!("/cards/{card}")).await;
    h.click("#cancel").await;
    let refused = h.text(".notice.error").await;
    assert!(refused.contains("主管"), "{refused}");
    h.shot("cancel-refused").await;
    assert_eq!(h.status(&card), CardStatus::Active);

    // Another operator's request holds the card: the loss report is refused at once.
    let console = h.console.clone();
    let held = console.app.desk.hold(card.as_str(), "zhao").unwrap();
    h.goto(&format!("/cards/{card}")).await;
    h.click("#report-loss").await;
    let refused = h.text(".notice.error").await;
    assert!(refused.contains("zhao"), "{refused}");
    h.shot("card-in-use").await;
    assert_eq!(h.status(&card), CardStatus::Active);
    drop(held);
    h.finish().await;
}
