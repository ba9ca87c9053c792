//! The pages, rendered on the server (maud). The only scripts: following an issuance's progress
//! (server-sent events) and the photo preview.

use std::collections::BTreeMap;

use host_lib::holder::{Applicant, ApplicantRecord, Field};
use host_lib::registry::{
    AuditEntry, CancelReason, CardDetails, CardStatus, LossStatement, PersonDetails, ReplaceReason,
};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::auth::Session;
use crate::desk::ReplaceQuote;
use crate::i18n::{Lang, Words};
use crate::jobs::{Finished, JobState};

/// Cents as yuan, `12.34`.
pub fn yuan(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// A message box: `ok`, `error`, `info`.
pub fn notice(kind: &str, text: &str) -> Markup {
    html! { div.notice.(kind) role="alert" { (text) } }
}

const CSS: &str = r#"
body{font-family:"Noto Sans CJK SC","Noto Sans SC","Microsoft YaHei",sans-serif;margin:0;background:#f4f6f8;color:#1b1f24}
header{background:#0b5394;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center;flex-wrap:wrap}
header a{color:#fff;text-decoration:none}header .grow{flex:1}
header form{display:inline}header button{background:none;border:1px solid #fff;color:#fff;border-radius:4px;padding:.2em .7em;cursor:pointer}
main{max-width:980px;margin:1.2em auto;padding:0 1em}
section{background:#fff;border:1px solid #d8dee4;border-radius:6px;padding:1em 1.2em;margin-bottom:1em}
h1{font-size:1.4em;margin:.2em 0 .6em}h2{font-size:1.1em;margin:.2em 0 .6em}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #e5e8eb;padding:.35em .5em;text-align:left;vertical-align:top;font-size:.95em}
th{background:#f0f3f6}
label{display:block;font-weight:600;margin-top:.6em}
input,select{font-size:1em;padding:.35em;border:1px solid #aab4be;border-radius:4px;min-width:16em}
input.bad,select.bad{border:2px solid #c62828;background:#fff5f5}
.field-error{color:#c62828;font-size:.9em;margin-top:.2em}
button.primary,button.danger,button.plain{font-size:1em;padding:.45em 1.2em;border-radius:4px;border:0;cursor:pointer;margin-top:.8em}
button.primary{background:#0b5394;color:#fff}button.danger{background:#c62828;color:#fff}button.plain{background:#e3e8ee}
.notice{padding:.7em 1em;border-radius:6px;margin-bottom:1em;white-space:pre-wrap}
.notice.ok{background:#e6f4ea;border:1px solid #34a853}.notice.error{background:#fdecea;border:1px solid #c62828}.notice.info{background:#e8f0fe;border:1px solid #4285f4}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:0 2em}
.status{display:inline-block;padding:.1em .6em;border-radius:10px;background:#e3e8ee}.status.active{background:#e6f4ea}.status.lost{background:#fff4e5}.status.cancelled{background:#eceff1;color:#555}
progress{width:100%;height:1.4em}
img.photo{max-width:120px;border:1px solid #ccc}
.muted{color:#5f6b76;font-size:.9em}
td.details{word-break:break-all;font-size:.85em;color:#5f6b76;max-width:28em}
@media print{header,.noprint{display:none}section{border:0}body{background:#fff}}
"#;

/// The frame of every page.
pub fn layout(
    lang: Lang,
    session: Option<&Session>,
    path: &str,
    title: &str,
    body: Markup,
) -> Markup {
    let w = lang.t();
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (w.title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    strong { a href="/" { (w.title) } }
                    @if session.is_some() {
                        a href="/applicants/new" { (w.new_applicant) }
                        form method="get" action="/lookup" {
                            input name="q" placeholder=(w.lookup_hint) style="min-width:12em";
                            " " button type="submit" { (w.lookup) }
                        }
                        a href="/audit" { (w.audit) }
                        a href="/blacklist.txt" { (w.blacklist_export) }
                    }
                    span.grow {}
                    a #lang href={ "/lang?to=" (if lang == Lang::Zh { "en" } else { "zh" }) "&back=" (path) } { (w.lang_switch) }
                    @if let Some(s) = session {
                        span #who { (s.display_name) " (" (s.login) ", " (role(w, s)) ")" }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button #logout type="submit" { (w.logout) }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn role(w: &Words, s: &Session) -> &'static str {
    if s.is_supervisor() {
        w.role_supervisor
    } else {
        w.role_operator
    }
}

/// The login page.
pub fn login(w: &Words, token: &str, message: Option<&str>) -> Markup {
    html! {
        section style="max-width:26em;margin:3em auto" {
            h1 { (w.login) }
            @if let Some(m) = message { (notice("error", m)) }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                label for="login" { (w.login_name) }
                input #login name="login" autocomplete="username" required;
                label for="password" { (w.password) }
                input #password type="password" name="password" autocomplete="current-password" required;
                div { button.primary #submit type="submit" { (w.login) } }
            }
        }
    }
}

/// The start page.
pub fn home(w: &Words, session: &Session, reader: &str, demo: bool) -> Markup {
    html! {
        @if demo { (notice("info", w.demo_note)) }
        section {
            h1 { (w.welcome) ", " (session.display_name) }
            p { a href="/applicants/new" { (w.new_applicant) } }
            form method="get" action="/lookup" {
                label for="q" { (w.lookup_hint) }
                input #q name="q";
                " " button.plain type="submit" { (w.lookup) }
            }
            p.muted { (w.reader) ": " (reader) }
        }
    }
}

fn field_label(w: &Words, f: Field) -> &'static str {
    match f {
        Field::IdNumber => w.f_id_number,
        Field::Name => w.f_name,
        Field::Sex => w.f_sex,
        Field::Ethnicity => w.f_ethnicity,
        Field::Birthplace => w.f_birthplace,
        Field::BirthDate => w.f_birth_date,
        Field::CardClass => w.f_card_class,
        Field::Eligibility => w.f_eligibility,
        Field::Photo => w.f_photo,
        Field::Phone => w.f_phone,
        Field::Address => w.f_address,
    }
}

/// The applicant entry form, with the values typed and each field's error.
pub fn applicant_form(
    w: &Words,
    csrf: &str,
    values: &ApplicantRecord,
    errors: &BTreeMap<Field, String>,
    message: Option<Markup>,
) -> Markup {
    let text = |f: Field, kind: &'static str| {
        let bad = errors.contains_key(&f);
        html! {
            div {
                label for=(f.column()) { (field_label(w, f)) }
                input id=(f.column()) name=(f.column()) type=(kind) value=(values.get(f).unwrap_or(""))
                    class=[bad.then_some("bad")] aria-invalid=(bad);
                @if let Some(e) = errors.get(&f) { div.field-error id={ (f.column()) "-error" } { (e) } }
            }
        }
    };
    let select = |f: Field, options: &[(&str, &str)], default: &str| {
        let bad = errors.contains_key(&f);
        let current = values.get(f).unwrap_or(default);
        html! {
            div {
                label for=(f.column()) { (field_label(w, f)) }
                select id=(f.column()) name=(f.column()) class=[bad.then_some("bad")] {
                    @for (v, l) in options {
                        option value=(v) selected[*v == current] { (l) }
                    }
                }
                @if let Some(e) = errors.get(&f) { div.field-error id={ (f.column()) "-error" } { (e) } }
            }
        }
    };
    html! {
        section {
            h1 { (w.applicant_entry) }
            @if let Some(m) = message { (m) }
            form #applicant method="post" action="/applicants" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(csrf);
                div.grid {
                    (text(Field::IdNumber, "text"))
                    (text(Field::Name, "text"))
                    (select(Field::Sex, &[("1", w.sex_male), ("2", w.sex_female)], "1"))
                    (text(Field::Ethnicity, "text"))
                    (text(Field::Birthplace, "text"))
                    (text(Field::BirthDate, "text"))
                    (select(Field::CardClass, &[("3", w.class_3), ("1", w.class_1), ("2", w.class_2), ("4", w.class_4)], "3"))
                    (select(Field::Eligibility, &[("household", w.elig_household), ("insured", w.elig_insured), ("none", w.elig_none)], "household"))
                    (text(Field::Phone, "text"))
                    (text(Field::Address, "text"))
                    div {
                        label for="photo" { (w.f_photo) }
                        input #photo type="file" name="photo" accept="image/jpeg"
                            class=[errors.contains_key(&Field::Photo).then_some("bad")];
                        @if let Some(e) = errors.get(&Field::Photo) { div.field-error id="photo-error" { (e) } }
                    }
                    div {
                        label { (w.photo_preview) }
                        img.photo #preview alt=(w.no_photo) hidden;
                    }
                }
                button.primary #issue type="submit" { (w.issue_button) }
            }
        }
        script { (PreEscaped(r#"
document.getElementById('photo').addEventListener('change', function (e) {
  var f = e.target.files[0], img = document.getElementById('preview');
  if (!f) { img.hidden = true; return; }
  var r = new FileReader();
  r.onload = function () { img.src = r.result; img.hidden = false; };
  r.readAsDataURL(f);
});"#)) }
    }
}

/// An issuance: progress while it runs, its end once it has one.
pub fn job(w: &Words, csrf: &str, id: u64, applicant: &Applicant, state: &JobState) -> Markup {
    html! {
        section {
            h1 { (w.issuing) ": " (applicant.name()) " " (applicant.id_number()) }
            @match &state.finished {
                None => {
                    (notice("info", w.progress_wait))
                    progress #progress max=(state.total.max(1)) value=(state.done) {}
                    p.muted #step { (state.phase) " " (state.done) "/" (state.total) " " (state.step) }
                    script { (PreEscaped(format!(r#"
var es = new EventSource('/jobs/{id}/events');
es.onmessage = function (m) {{
  var s = JSON.parse(m.data), p = document.getElementById('progress');
  p.max = Math.max(s.total, 1); p.value = s.done;
  document.getElementById('step').textContent = s.phase + ' ' + s.done + '/' + s.total + ' ' + s.step;
  if (s.finished) {{ es.close(); location.reload(); }}
}};"#))) }
                }
                Some(Finished::Issued { card_number, apdus, fee_cents, resumed }) => {
                    div.notice.ok #result {
                        (w.issued) " " @if *resumed { (w.resumed) } ": "
                        a #card-link href={ "/cards/" (card_number) } { (card_number) }
                    }
                    table {
                        tr { th { (w.card_number) } td #card-number { (card_number) } }
                        tr { th { (w.holder) } td { (applicant.name()) } }
                        tr { th { (w.apdus) } td { (apdus) } }
                        tr { th { (w.fee) } td { (yuan(i64::from(*fee_cents))) } }
                    }
                    p.noprint { button.plain onclick="window.print()" { (w.print) } }
                }
                Some(Finished::Failed { message, resumable, busy }) => {
                    div.notice.error #result {
                        @if let Some((what, by)) = busy { (w.busy_message(what, by)) }
                        @else { (w.issue_failed) ": " (message) }
                    }
                    @if *resumable {
                        p { (w.resume_hint) }
                        form method="post" action={ "/jobs/" (id) "/resume" } {
                            input type="hidden" name="csrf" value=(csrf);
                            button.primary #resume type="submit" { (w.resume) }
                        }
                    }
                }
            }
        }
    }
}

/// What is wrong with a field: a summary in the page's language, then host-lib's detail.
pub fn problem_text(w: &Words, p: &host_lib::holder::Problem) -> String {
    use host_lib::holder::Problem as P;
    let summary = match p {
        P::Missing => return w.p_missing.to_owned(),
        P::IdNumber(_) => w.p_id_number,
        P::Name(_) => w.p_name,
        P::Ethnicity(_) => w.p_ethnicity,
        P::Region(_) => w.p_region,
        P::Date(_) => w.p_date,
        P::BirthDateMismatch { .. } => w.p_birth_date_mismatch,
        P::SexMismatch { .. } => w.p_sex_mismatch,
        P::Photo(_) => w.p_photo,
        P::NotEligible => w.p_not_eligible,
        _ => w.p_invalid,
    };
    format!("{summary} — {p}")
}

fn status_label(w: &Words, s: CardStatus) -> &'static str {
    match s {
        CardStatus::Personalizing => w.st_personalizing,
        CardStatus::Active => w.st_active,
        CardStatus::Lost => w.st_lost,
        CardStatus::Cancelled => w.st_cancelled,
        CardStatus::Aborted => w.st_aborted,
    }
}

/// The label of a replacement reason.
pub fn replace_reason(w: &Words, r: ReplaceReason) -> &'static str {
    match r {
        ReplaceReason::Lost => w.reason_lost,
        ReplaceReason::Damaged => w.reason_damaged,
        ReplaceReason::Unreadable => w.reason_unreadable,
        ReplaceReason::DataChanged => w.reason_other,
        ReplaceReason::Other => w.reason_other,
    }
}

/// The label of a cancellation reason.
pub fn cancel_reason(w: &Words, r: CancelReason) -> &'static str {
    match r {
        CancelReason::Death => w.reason_death,
        CancelReason::MovedAway => w.reason_moved_away,
        CancelReason::NoLongerNeeded => w.reason_no_longer_needed,
    }
}

/// A card: status, holder, purse, history, and what can be done with it.
pub fn card(
    w: &Words,
    csrf: &str,
    d: &CardDetails,
    holder: &Applicant,
    quote: &ReplaceQuote,
    message: Option<Markup>,
) -> Markup {
    let c = &d.card;
    let n = &c.card_number;
    let live = matches!(c.status, CardStatus::Active | CardStatus::Lost);
    html! {
        @if let Some(m) = message { (m) }
        section {
            h1 { (w.card) " " span #card-number { (n) } " "
                span #status class={ "status " (c.status.as_str()) } { (status_label(w, c.status)) } }
            div.grid {
                table {
                    tr { th { (w.holder) } td #holder { (holder.name()) } }
                    tr { th { (w.f_id_number) } td { a href={ "/lookup?q=" (c.id_number) } { (c.id_number) } } }
                    tr { th { (w.issue_date) } td { (c.issue_date) } }
                    tr { th { (w.expiry_date) } td { (c.expiry_date) } }
                    @if let Some(r) = &c.replaces { tr { th { (w.replaces) } td { a href={ "/cards/" (r) } { (r) } } } }
                    @if let Some(r) = &c.replaced_by { tr { th { (w.replaced_by) } td { a #replaced-by href={ "/cards/" (r) } { (r) } } } }
                    tr { th { (w.balance) } td #balance { (yuan(d.balance_cents)) } }
                }
                div {
                    @if let Some(p) = holder.photo() {
                        img.photo alt=(w.f_photo) src={ "data:image/jpeg;base64," (base64(p.bytes())) };
                    }
                }
            }
        }
        @if live {
            section.noprint {
                h2 { (w.actions) }
                @if c.status == CardStatus::Active {
                    form method="post" action={ "/cards/" (n) "/load" } {
                        input type="hidden" name="csrf" value=(csrf);
                        label for="load-amount" { (w.load) " (" (w.yuan) ")" }
                        input #load-amount name="amount" inputmode="decimal" style="min-width:8em";
                        " " button #load.plain type="submit" { (w.load) }
                    }
                    form method="post" action={ "/cards/" (n) "/chip" } {
                        input type="hidden" name="csrf" value=(csrf);
                        button #read-chip.plain type="submit" { (w.read_chip) }
                    }
                    form method="post" action={ "/cards/" (n) "/loss" } {
                        input type="hidden" name="csrf" value=(csrf);
                        button.danger #report-loss type="submit" { (w.report_loss) }
                    }
                }
                @if c.status == CardStatus::Lost {
                    form method="post" action={ "/cards/" (n) "/revoke" } {
                        input type="hidden" name="csrf" value=(csrf);
                        button.plain #revoke-loss type="submit" { (w.revoke_loss) " (" (w.role_supervisor) ")" }
                    }
                    p { a #statement href={ "/cards/" (n) "/statement" } { (w.loss_statement) } }
                }
                form #replace-form method="post" action={ "/cards/" (n) "/replace" } {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="replace-reason" { (w.replace) " — " (w.replace_reason) }
                    select #replace-reason name="reason" {
                        @for (r, fee) in &quote.fees {
                            @if *r != ReplaceReason::DataChanged && (*r == ReplaceReason::Lost) == (c.status == CardStatus::Lost) {
                                option value=(r.as_str()) { (replace_reason(w, *r)) " — " (w.fee) " " (yuan(i64::from(*fee))) }
                            }
                        }
                    }
                    p.muted { (w.carry_over) ": " span #carry-over { (yuan(quote.carry_over_cents)) } }
                    p.muted { (w.replace_hint) }
                    button.primary #replace type="submit" { (w.replace) " (" (w.role_supervisor) ")" }
                }
                form #cancel-form method="post" action={ "/cards/" (n) "/cancel" } {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="cancel-reason" { (w.cancel) " — " (w.cancel_reason) }
                    select #cancel-reason name="reason" {
                        @for r in CancelReason::ALL { option value=(r.as_str()) { (cancel_reason(w, *r)) } }
                    }
                    label { input type="checkbox" name="at_hand" value="1" checked style="min-width:0"; " " (w.card_at_hand) }
                    p.muted { (w.refund) ": " (yuan(d.balance_cents)) }
                    button.danger #cancel type="submit" { (w.cancel) " (" (w.role_supervisor) ")" }
                }
            }
        }
        @if !d.blacklist.is_empty() && c.status != CardStatus::Lost {
            section { p { a #statement href={ "/cards/" (n) "/statement" } { (w.loss_statement) } } }
        }
        section {
            h2 { (w.purse_log) }
            table #ledger {
                tr { th { (w.at) } th { (w.kind) } th { (w.amount) } th { (w.terminal) } th { (w.operator_label) } }
                @for e in &d.ledger {
                    tr { td { (e.at) } td { (format!("{:?}", e.kind).to_lowercase()) } td { (yuan(e.amount_cents)) }
                         td { (e.terminal_id.as_deref().unwrap_or("")) } td { (e.operator) } }
                }
            }
        }
        section {
            h2 { (w.history) }
            table {
                tr { th { (w.at) } th { (w.from) } th { (w.to) } th { (w.reason) } th { (w.operator_label) } }
                @for h in &d.history {
                    tr { td { (h.at) } td { (h.from.as_deref().unwrap_or("")) } td { (h.to) }
                         td { (h.reason.as_deref().unwrap_or("")) } td { (h.operator) } }
                }
            }
            @if !d.fees.is_empty() {
                h2 { (w.fees) }
                table {
                    @for f in &d.fees { tr { td { (f.at) } td { (f.kind) } td { (yuan(f.amount_cents)) } td { (f.operator) } } }
                }
            }
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A person and their cards.
pub fn person(w: &Words, p: &PersonDetails) -> Markup {
    html! {
        section {
            h1 { (w.person) ": " (p.person.data.name()) " " (p.person.data.id_number()) }
            h2 { (w.cards_of_person) }
            table #cards {
                tr { th { (w.card_number) } th { (w.status) } th { (w.issue_date) } th { (w.replaced_by) } }
                @for c in &p.cards {
                    tr { td { a href={ "/cards/" (c.card_number) } { (c.card_number) } } td { (status_label(w, c.status)) }
                         td { (c.issue_date) } td { (c.replaced_by.as_deref().unwrap_or("")) } }
                }
            }
        }
    }
}

/// A receipt: what was done, for whom, by whom; printable.
pub fn receipt(
    w: &Words,
    what: &str,
    card: &str,
    rows: &[(&str, String)],
    operator: &str,
    at: &str,
) -> Markup {
    html! {
        section #receipt {
            div.notice.ok #result { (what) " — " (w.done) }
            h1 { (w.receipt) ": " (what) }
            table {
                tr { th { (w.card_number) } td { a href={ "/cards/" (card) } { (card) } } }
                @for (k, v) in rows { tr { th { (k) } td { (v) } } }
                tr { th { (w.operator_label) } td { (operator) } }
                tr { th { (w.at) } td { (at) } }
            }
            p.noprint { button.plain onclick="window.print()" { (w.print) } " " a href={ "/cards/" (card) } { (w.card) " " (card) } }
        }
    }
}

/// The loss statement.
pub fn statement(w: &Words, s: &LossStatement) -> Markup {
    let list = |rows: &[host_lib::registry::PurchaseEntry]| {
        html! {
            table {
                tr { th { (w.at) } th { (w.amount) } th { (w.terminal) } }
                @for p in rows { tr { td { (p.at) } td { (yuan(p.amount_cents)) } td { (p.terminal_id.as_deref().unwrap_or("")) } } }
            }
        }
    };
    html! {
        section {
            h1 { (w.loss_statement) ": " (s.card_number) }
            table {
                tr { th { (w.reported_at) } th { (w.revoked_at) } }
                @for win in &s.windows { tr { td { (win.reported_at) } td { (win.revoked_at.as_deref().unwrap_or("")) } } }
            }
            h2 { (w.holder_part) ": " (yuan(s.holder_total_cents)) }
            (list(&s.holder))
            h2 { (w.issuer_part) ": " (yuan(s.issuer_total_cents)) }
            (list(&s.issuer))
            p.noprint { button.plain onclick="window.print()" { (w.print) } }
        }
    }
}

/// The audit log with the chain check.
pub fn audit(w: &Words, entries: &[AuditEntry], verify: &serde_json::Value) -> Markup {
    html! {
        section {
            h1 { (w.verify) }
            @let findings = verify.get("findings").and_then(|f| f.as_array()).map_or(0, Vec::len);
            div #verify {
                @if findings == 0 { (notice("ok", w.verify_ok)) }
                @else { (notice("error", &format!("{} {findings}", w.verify_findings))) }
            }
            pre { (serde_json::to_string_pretty(verify).unwrap_or_default()) }
        }
        section {
            h2 { (w.audit) " — " (w.recent) }
            table #audit {
                tr { th { "#" } th { (w.at) } th { (w.operator_label) } th { (w.action) } th { (w.card_number) } th { (w.details) } }
                @for e in entries.iter().rev() {
                    tr { td { (e.id) } td { (e.at) } td { (e.operator) } td { (e.action) }
                         td { (e.card_number.as_deref().unwrap_or("")) } td.details { (e.details.to_string()) } }
                }
            }
        }
    }
}

/// A page that only says what went wrong.
pub fn problem(message: &str) -> Markup {
    notice("error", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_base64() {
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(10_050), "100.50");
        assert_eq!(yuan(-7), "-0.07");
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
