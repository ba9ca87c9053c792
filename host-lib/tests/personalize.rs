//! Personalization with the default profile on the simulated card OS, through the registry:
//! every sample applicant issued and read back, the bad batch refused, a cut at every APDU
//! recovered, profiles that cannot work refused before any APDU, both development key sets, and
//! the measured APDU counts and times (`-- --nocapture` prints them).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use card_os::card::HistoricalBytes;
use card_os::nvm::Geometry;
use card_os::sim::PowerCut;
use host_lib::holder::{input, Applicant, Validator};
use host_lib::keys::{KeySet, KeyStore};
use host_lib::personalize::register::{issue_pending, reserve, IssueError};
use host_lib::personalize::{self, CardData, CardInfo, Found, IssueReport, PersonalizeError};
use host_lib::profile::{Profile, WENZHOU_TOML};
use host_lib::registry::{CardStatus, ManualClock, PendingCard, Registry, RegistryConfig};
use host_lib::ssse::{read_card, ReadMode, ReadOptions};
use host_lib::transport::sim::SimTransport;
use host_lib::transport::{Error, Transport};

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors")
}

fn keys(file: &str) -> KeySet {
    KeySet::load(&vectors().join("keys").join(file)).unwrap()
}

fn validator() -> Validator {
    Validator::new(time::macros::date!(2026 - 01 - 10))
}

fn registry() -> Registry {
    let clock = Arc::new(ManualClock::new(
        time::macros::datetime!(2026-01-10 02:00 UTC),
    ));
    Registry::open_in_memory(RegistryConfig::default(), clock).unwrap()
}

fn sample() -> Vec<Applicant> {
    input::load_csv(&vectors().join("applicants/sample.csv"), &validator())
        .unwrap()
        .into_iter()
        .map(|row| row.result.unwrap())
        .collect()
}

fn blank_card(serial: u32) -> SimTransport {
    SimTransport::blank(
        Geometry::DEFAULT,
        &HistoricalBytes::wenzhou(serial.to_be_bytes()),
    )
    .unwrap()
}

/// The card read back holds exactly the applicant's data and the registry's card data.
fn assert_card_holds(
    t: &mut dyn Transport,
    keys: &dyn KeyStore,
    applicant: &Applicant,
    pending: &PendingCard,
    mode: ReadMode,
) {
    let c = read_card(
        t,
        keys,
        &Profile::wenzhou(),
        ReadOptions { mode, photo: true },
    )
    .unwrap();
    let h = &c.holder;
    assert_eq!(h.id_number, *applicant.id_number());
    assert_eq!(h.name, *applicant.name());
    assert_eq!(h.sex, applicant.sex());
    assert_eq!(h.ethnicity, applicant.ethnicity());
    assert_eq!(h.birthplace, applicant.birthplace());
    assert_eq!(h.birth_date, applicant.birth_date());
    assert!(c.inconsistencies.is_empty());
    assert_eq!(c.issuer.card_number, pending.card_number);
    assert_eq!(c.issuer.card_class, applicant.card_class());
    assert_eq!(c.issuer.issue_date, pending.issue_date);
    assert_eq!(c.issuer.expiry_date, pending.expiry_date);
    assert_eq!(c.issuer.card_id.serial, pending.serial);
    assert_eq!(c.issuer.spec_version.as_str(), "3.00");
    assert_eq!(
        c.photo.as_ref().map(|p| p.bytes().to_vec()),
        applicant.photo().map(|p| p.bytes().to_vec())
    );
    let info = c.card_info.unwrap();
    assert!(info.issued);
    assert_eq!(info.card_number.as_ref(), Some(&pending.card_number));
    assert_eq!(info.profile, "wenzhou-default-1");
    let purse = c.purse.unwrap();
    assert_eq!(
        purse.app_serial,
        hex::encode_upper(personalize::app_serial(pending.city, pending.serial))
    );
}

#[test]
fn every_sample_applicant_is_issued_and_reads_back_exactly() {
    let keys = keys("dev.toml");
    let profile = Profile::wenzhou();
    let mut reg = registry();
    let applicants = sample();
    assert_eq!(applicants.len(), 23);
    for (i, a) in applicants.iter().enumerate() {
        let reserved = reserve(&mut reg, "op-1", a, &keys).unwrap();
        assert!(!reserved.resumed);
        let mut card = blank_card(1000 + i as u32);
        let (report, issued) = issue_pending(
            &mut reg,
            "op-1",
            &mut card,
            &keys,
            &profile,
            &reserved.pending,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(report.found, Found::Blank);
        assert_eq!(issued.card_number, reserved.pending.card_number);
        assert_eq!(
            reg.status(&reserved.pending.card_number).unwrap(),
            CardStatus::Active
        );
        // Alternate the two addressing modes of social-security readers.
        let mode = if i % 2 == 0 {
            ReadMode::ByRecord
        } else {
            ReadMode::ByTag
        };
        assert_card_holds(&mut card, &keys, a, &reserved.pending, mode);
    }
}

#[test]
fn the_bad_batch_issues_nothing_and_names_every_fault() {
    let rows = input::load_csv(&vectors().join("applicants/bad.csv"), &validator()).unwrap();
    let expected = std::fs::read_to_string(vectors().join("applicants/bad-expected.csv")).unwrap();
    let mut reg = registry();
    let keys = keys("dev.toml");
    let mut named = 0;
    for line in expected.lines().skip(1) {
        let mut cols = line.splitn(3, ',');
        let (line_no, field) = (
            cols.next().unwrap().parse::<u64>().unwrap(),
            cols.next().unwrap(),
        );
        let row = rows.iter().find(|r| r.line == line_no).unwrap();
        match &row.result {
            Err(e) => {
                assert!(
                    e.fields().iter().any(|f| f.column() == field),
                    "line {line_no}: {e} does not name {field}"
                );
            }
            // The ineligible applicant is valid data that the registry refuses.
            Ok(a) => {
                let e = reserve(&mut reg, "op", a, &keys).unwrap_err();
                assert!(e.to_string().contains("eligibility"), "{e}");
            }
        }
        named += 1;
    }
    assert_eq!(named, rows.len());
    assert!(reg.list_cards(&Default::default()).unwrap().is_empty());
}

/// How a card is lost at one APDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Pulled out before the APDU reached it.
    Before,
    /// Power lost during the APDU's first NVM page write (half of it written).
    FirstWrite,
    /// Power lost during the APDU's last NVM page write (the command's journal record may be
    /// complete: the command then happens at the next power-up).
    LastWrite,
    /// The command ran but the answer never came back.
    AnswerLost,
}

/// A simulated card that fails at APDU number `at` (0-based).
struct Faulty {
    card: SimTransport,
    sent: usize,
    at: usize,
    fault: Fault,
    /// Page writes of each APDU, from a clean run.
    writes: Vec<u64>,
    fired: bool,
}

impl Transport for Faulty {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, Error> {
        let n = self.sent;
        self.sent += 1;
        if n != self.at {
            return self.card.transmit(command);
        }
        self.fired = true;
        let removed = || Error::CardRemoved {
            reader: "faulty".into(),
        };
        let writes = self.writes.get(n).copied().unwrap_or(0);
        match self.fault {
            Fault::Before => Err(removed()),
            Fault::AnswerLost => {
                self.card.transmit(command)?;
                Err(removed())
            }
            Fault::FirstWrite | Fault::LastWrite => {
                let write = if self.fault == Fault::FirstWrite || writes == 0 {
                    0
                } else {
                    writes - 1
                };
                self.card
                    .card_mut()
                    .nvm_mut()
                    .arm_cut(PowerCut { write, bytes: 20 });
                let r = self.card.transmit(command);
                self.card.card_mut().nvm_mut().disarm_cut();
                // Without writes the command completed; the card is pulled right after it.
                r?;
                Err(removed())
            }
        }
    }
    fn reset(&mut self) -> Result<Vec<u8>, Error> {
        self.card.reset()
    }
    fn atr(&self) -> &[u8] {
        self.card.atr()
    }
    fn name(&self) -> &str {
        "faulty simulated card"
    }
}

/// Counts page writes per APDU.
struct Recording {
    card: SimTransport,
    writes: Vec<u64>,
    commands: Vec<Vec<u8>>,
    report: Option<IssueReport>,
}

impl Transport for Recording {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, Error> {
        let before = self.card.card_mut().nvm().counters().page_writes;
        let r = self.card.transmit(command);
        let after = self.card.card_mut().nvm().counters().page_writes;
        self.writes.push(after - before);
        self.commands.push(command.to_vec());
        r
    }
    fn reset(&mut self) -> Result<Vec<u8>, Error> {
        self.card.reset()
    }
    fn atr(&self) -> &[u8] {
        self.card.atr()
    }
    fn name(&self) -> &str {
        "recording simulated card"
    }
}

fn recorded_run(keys: &KeySet, applicant: &Applicant) -> Recording {
    let mut reg = registry();
    let pending = reserve(&mut reg, "op", applicant, keys).unwrap().pending;
    let mut rec = Recording {
        card: blank_card(7),
        writes: vec![],
        commands: vec![],
        report: None,
    };
    let (report, _) = issue_pending(
        &mut reg,
        "op",
        &mut rec,
        keys,
        &Profile::wenzhou(),
        &pending,
        &mut |_| {},
    )
    .unwrap();
    rec.report = Some(report);
    rec
}

/// One applicant with a photo.
fn with_photo() -> Applicant {
    sample().into_iter().find(|a| a.photo().is_some()).unwrap()
}

/// Cuts one personalization at APDU `at` with `fault`, then runs it again: the card must end
/// issued and correct, the registry `personalizing` in between and `active` after.
fn cut_and_recover(
    keys: &KeySet,
    applicant: &Applicant,
    clean: &Recording,
    at: usize,
    fault: Fault,
) {
    let writes = &clean.writes;
    // The card information with the issued state is the last personalization APDU.
    let last_write = clean.report.as_ref().unwrap().apdus.personalization - 1;
    let profile = Profile::wenzhou();
    let mut reg = registry();
    let pending = reserve(&mut reg, "op", applicant, keys).unwrap().pending;
    let mut card = Faulty {
        card: blank_card(7),
        sent: 0,
        at,
        fault,
        writes: writes.to_vec(),
        fired: false,
    };
    let first = issue_pending(
        &mut reg,
        "op",
        &mut card,
        keys,
        &profile,
        &pending,
        &mut |_| {},
    );
    assert!(card.fired, "{fault:?} at {at}: the fault did not fire");
    match first {
        Err(IssueError::Personalize { source, .. }) => assert!(
            matches!(source, PersonalizeError::Transport { .. }),
            "{fault:?} at {at}: {source}"
        ),
        other => panic!("{fault:?} at {at}: {:?}", other.map(|r| r.0)),
    }
    // Nothing is recorded as issued that is not.
    assert_eq!(
        reg.status(&pending.card_number).unwrap(),
        CardStatus::Personalizing,
        "{fault:?} at {at}"
    );
    // The same applicant again: the same card number comes back, the card is finished.
    let again = reserve(&mut reg, "op", applicant, keys).unwrap();
    assert!(again.resumed);
    assert_eq!(again.pending.card_number, pending.card_number);
    let mut sim = card.card;
    let (report, _) = issue_pending(
        &mut reg,
        "op",
        &mut sim,
        keys,
        &profile,
        &again.pending,
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{fault:?} at {at}: the second run failed: {e}"));
    match report.found {
        Found::Issued(_) => assert!(
            at > last_write || (at == last_write && fault != Fault::Before),
            "{fault:?} at {at}: issued before its last write"
        ),
        _ => assert!(
            at <= last_write,
            "{fault:?} at {at}: not issued after its last write"
        ),
    }
    assert_eq!(
        reg.status(&pending.card_number).unwrap(),
        CardStatus::Active,
        "{fault:?} at {at}"
    );
    assert_card_holds(
        &mut sim,
        keys,
        applicant,
        &again.pending,
        ReadMode::ByRecord,
    );
}

#[test]
fn a_cut_at_any_apdu_is_recovered_by_running_again() {
    let keys = keys("dev.toml");
    let applicant = with_photo();
    let clean = recorded_run(&keys, &applicant);
    let n = clean.writes.len();
    assert!(n > 100, "{n} APDUs");
    let mut runs = 0;
    for at in 0..n {
        for fault in [
            Fault::Before,
            Fault::FirstWrite,
            Fault::LastWrite,
            Fault::AnswerLost,
        ] {
            // Cuts inside writes, and lost answers, only where the APDU writes (a lost answer
            // of a command that changes nothing is the next command's "before").
            if fault != Fault::Before && clean.writes[at] == 0 {
                continue;
            }
            if fault == Fault::LastWrite && clean.writes[at] == 1 {
                continue;
            }
            cut_and_recover(&keys, &applicant, &clean, at, fault);
            runs += 1;
        }
    }
    println!("{runs} cut personalizations recovered ({n} APDUs per card)");
}

#[test]
fn a_cut_during_recovery_is_recovered_too() {
    // First cut right after the MF master became MF_MK (the transport key no longer opens the
    // MF), then a cut at every APDU of the recovering run, then a run that finishes.
    let keys = keys("dev-sm4.toml");
    let applicant = sample().remove(3);
    let clean = recorded_run(&keys, &applicant);
    // The MF master replacement is the 5th APDU (redefine, key file, plain master, GET
    // CHALLENGE, WRITE KEY 84 D4 39 00).
    assert_eq!(hex::encode_upper(&clean.commands[4][..4]), "84D43900");
    let profile = Profile::wenzhou();
    for first_cut in [2usize, 5, 40] {
        for second in 0..40 {
            let mut reg = registry();
            let pending = reserve(&mut reg, "op", &applicant, &keys).unwrap().pending;
            let mut card = Faulty {
                card: blank_card(7),
                sent: 0,
                at: first_cut,
                fault: Fault::Before,
                writes: vec![],
                fired: false,
            };
            issue_pending(
                &mut reg,
                "op",
                &mut card,
                &keys,
                &profile,
                &pending,
                &mut |_| {},
            )
            .unwrap_err();
            let pending = reserve(&mut reg, "op", &applicant, &keys).unwrap().pending;
            let mut card = Faulty {
                card: card.card,
                sent: 0,
                at: second,
                fault: Fault::Before,
                writes: vec![],
                fired: false,
            };
            let r = issue_pending(
                &mut reg,
                "op",
                &mut card,
                &keys,
                &profile,
                &pending,
                &mut |_| {},
            );
            assert!(r.is_err() && card.fired);
            assert_eq!(
                reg.status(&pending.card_number).unwrap(),
                CardStatus::Personalizing
            );
            let pending = reserve(&mut reg, "op", &applicant, &keys).unwrap().pending;
            let mut sim = card.card;
            issue_pending(
                &mut reg,
                "op",
                &mut sim,
                &keys,
                &profile,
                &pending,
                &mut |_| {},
            )
            .unwrap_or_else(|e| panic!("cuts at {first_cut} then {second}: {e}"));
            assert_card_holds(&mut sim, &keys, &applicant, &pending, ReadMode::ByTag);
        }
    }
}

/// A transport that must not be used.
struct Untouchable {
    atr: Vec<u8>,
    sent: usize,
}

impl Transport for Untouchable {
    fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, Error> {
        self.sent += 1;
        Ok(vec![0x90, 0x00])
    }
    fn reset(&mut self) -> Result<Vec<u8>, Error> {
        self.sent += 1;
        Ok(self.atr.clone())
    }
    fn atr(&self) -> &[u8] {
        &self.atr
    }
    fn name(&self) -> &str {
        "untouchable"
    }
}

fn card_data(reg: &mut Registry, keys: &KeySet) -> (PendingCard, CardData) {
    let pending = reserve(reg, "op", &with_photo(), keys).unwrap().pending;
    let data = CardData::from_pending(&pending, &HistoricalBytes::wenzhou([0, 0, 0, 9]));
    (pending, data)
}

#[test]
fn a_profile_that_cannot_work_is_refused_before_any_apdu() {
    let keys = keys("dev.toml");
    let mut reg = registry();
    let (_, data) = card_data(&mut reg, &keys);
    let atr = card_os::card::system::atr(&HistoricalBytes::wenzhou([0, 0, 0, 9])).to_vec();
    let try_with = |profile: &Profile, keys: &dyn KeyStore, atr: &[u8]| {
        let mut t = Untouchable {
            atr: atr.to_vec(),
            sent: 0,
        };
        let e = personalize::issue(&mut t, keys, profile, &data, &mut |_| {}).unwrap_err();
        assert_eq!(t.sent, 0, "{e}");
        assert!(e.before_any_apdu(), "{e}");
        e.to_string()
    };
    // An unknown key.
    let p = Profile::parse(&WENZHOU_TOML.replace("\"UKSSSE\"", "\"UK-SSSE\""), "t").unwrap();
    let e = try_with(&p, &keys, &atr);
    assert!(e.contains("key UK-SSSE is not in key set"), "{e}");
    // A key set without the purse keys.
    let mut text = std::fs::read_to_string(vectors().join("keys/dev.toml")).unwrap();
    let cut = text.find("[keys.DLK]").unwrap();
    let end = text[cut..].find("\n\n").map(|i| cut + i).unwrap();
    text.replace_range(cut..end, "");
    let partial = KeySet::from_toml(&text).unwrap();
    let e = try_with(&Profile::wenzhou(), &partial, &atr);
    assert!(e.contains("key DLK is not in key set"), "{e}");
    // An ATR without the social-security historical bytes.
    let e = try_with(&Profile::wenzhou(), &keys, &[0x3B, 0x02, 0x14, 0x50]);
    assert!(e.contains("historical bytes"), "{e}");
    // Profiles that cannot work do not even parse: no space, too large, duplicate FID, no key file.
    for (from, to, says) in [
        ("space = 512", "space = 100", "more than its space 100"),
        ("memory = 31335", "memory = 4000", "too large for the card"),
        ("fid = \"0017\"", "fid = \"0015\"", "FID 0015 is used twice"),
        (
            "[df.key_file]\nspace = 96\nadd = \"0A\"\n",
            "",
            "no key file",
        ),
    ] {
        let e = Profile::parse(&WENZHOU_TOML.replacen(from, to, 1), "t").unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }
}

#[test]
fn both_development_key_sets_issue_cards() {
    for (file, alg) in [("dev.toml", 0x01), ("dev-sm4.toml", 0x03)] {
        let keys = keys(file);
        let mut reg = registry();
        let a = with_photo();
        let pending = reserve(&mut reg, "op", &a, &keys).unwrap().pending;
        let mut card = blank_card(42);
        issue_pending(
            &mut reg,
            "op",
            &mut card,
            &keys,
            &Profile::wenzhou(),
            &pending,
            &mut |_| {},
        )
        .unwrap();
        let c = read_card(
            &mut card,
            &keys,
            &Profile::wenzhou(),
            ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(c.ssse.algorithm, Some(alg), "{file}");
        assert_eq!(c.ssse.dir_sfi, Some(0x1E));
        assert_eq!(c.card_info.unwrap().key_set, keys.identity().id);
        // The other key set is refused before it could spend one of RKSSSE's tries: after
        // five attempts the card still reads with its own.
        let other = self::keys(if file == "dev.toml" {
            "dev-sm4.toml"
        } else {
            "dev.toml"
        });
        for _ in 0..5 {
            let e = read_card(
                &mut card,
                &other,
                &Profile::wenzhou(),
                ReadOptions::default(),
            )
            .unwrap_err();
            assert!(
                e.to_string()
                    .contains(&format!("issued with key set {}", keys.identity().id)),
                "{e}"
            );
        }
        read_card(
            &mut card,
            &keys,
            &Profile::wenzhou(),
            ReadOptions::default(),
        )
        .unwrap();
    }
}

#[test]
fn an_issued_card_is_left_alone() {
    let keys = keys("dev.toml");
    let profile = Profile::wenzhou();
    let mut reg = registry();
    let people = sample();
    let first = reserve(&mut reg, "op", &people[0], &keys).unwrap().pending;
    let mut card = blank_card(5);
    issue_pending(
        &mut reg,
        "op",
        &mut card,
        &keys,
        &profile,
        &first,
        &mut |_| {},
    )
    .unwrap();
    // The same card number again (e.g. the registry step failed): verified only.
    let data = CardData::from_pending(&first, &HistoricalBytes::wenzhou([0, 0, 0, 5]));
    let again = personalize::issue(&mut card, &keys, &profile, &data, &mut |_| {}).unwrap();
    assert!(matches!(
        again.found,
        Found::Issued(CardInfo { issued: true, .. })
    ));
    assert_eq!(again.apdus.personalization, 0);
    // Another applicant on the issued card: refused, the card untouched.
    let second = reserve(&mut reg, "op", &people[1], &keys).unwrap().pending;
    let e = issue_pending(
        &mut reg,
        "op",
        &mut card,
        &keys,
        &profile,
        &second,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("already issued, as card {}", first.card_number)),
        "{e}"
    );
    assert_eq!(
        reg.status(&second.card_number).unwrap(),
        CardStatus::Personalizing
    );
    assert_card_holds(&mut card, &keys, &people[0], &first, ReadMode::ByRecord);
}

#[test]
fn no_secret_key_travels_in_clear() {
    for file in ["dev.toml", "dev-sm4.toml"] {
        let keys = keys(file);
        let rec = recorded_run(&keys, &with_photo());
        let text = std::fs::read_to_string(vectors().join("keys").join(file)).unwrap();
        let values: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("value = \""))
            .map(|v| v.trim_end_matches('"').to_owned())
            .filter(|v| !v.chars().all(|c| c == 'F'))
            .collect();
        assert!(values.len() > 50);
        let stream = hex::encode_upper(rec.commands.concat());
        for v in &values {
            assert!(
                !stream.contains(v.as_str()),
                "{file}: a master key in clear"
            );
        }
        // The only plain WRITE KEYs write the public transport key (16 x FF).
        for c in rec.commands.iter().filter(|c| c[..2] == [0x80, 0xD4]) {
            assert!(
                hex::encode_upper(c).ends_with(&"FF".repeat(16)),
                "{}",
                hex::encode_upper(c)
            );
        }
    }
}

/// APDUs and in-process time per card: printed (`cargo test -p host-lib --test personalize --
/// measured --nocapture`), and the APDU budget checked.
#[test]
fn measured_apdus_and_time_per_card() {
    let profile = Profile::wenzhou();
    let people = sample();
    let no_photo = people.iter().find(|a| a.photo().is_none()).unwrap();
    let photo = with_photo();
    let big = {
        // A 4096-byte photo: the largest EF08 holds (JPEG padded with a comment segment).
        let small = photo.photo().unwrap().bytes().to_vec();
        // SOI, then a COM segment (FF FE, its length L counting itself, L - 2 bytes), then the
        // rest: 2 + 2 + L + (len - 2) = 4096.
        let l = 4094 - small.len();
        let mut b = small[..2].to_vec();
        b.extend_from_slice(&[0xFF, 0xFE]);
        b.extend_from_slice(&(l as u16).to_be_bytes());
        b.extend(std::iter::repeat_n(b'x', l - 2));
        b.extend_from_slice(&small[2..]);
        assert_eq!(b.len(), 4096);
        let mut r = photo.to_record();
        r.photo = None;
        validator().validate_with_photo(&r, Some(b)).unwrap()
    };
    for file in ["dev.toml", "dev-sm4.toml"] {
        let keys = keys(file);
        for (what, a) in [
            ("no photo", no_photo),
            ("photo", &photo),
            ("4096-byte photo", &big),
        ] {
            let mut reg = registry();
            let pending = reserve(&mut reg, "op", a, &keys).unwrap().pending;
            let mut best = Duration::MAX;
            let mut report: Option<IssueReport> = None;
            for _ in 0..3 {
                let mut card = blank_card(3);
                let data =
                    CardData::from_pending(&pending, &HistoricalBytes::wenzhou([0, 0, 0, 3]));
                let r = personalize::issue(&mut card, &keys, &profile, &data, &mut |_| {}).unwrap();
                best = best.min(r.elapsed);
                report = Some(r);
            }
            let r = report.unwrap();
            println!(
                "{file:<13} {what:<16} photo {:>4} B: {:>3} APDUs ({} personalization + {} \
                 verification), best of 3: {:.2} ms",
                r.photo_bytes,
                r.apdus.total(),
                r.apdus.personalization,
                r.apdus.verification,
                best.as_secs_f64() * 1e3
            );
            if what == "no photo" {
                assert!(r.apdus.personalization <= 80, "{:?}", r.apdus);
            }
        }
    }
}

#[test]
fn an_unfinished_card_reads_as_unfinished() {
    let keys = keys("dev.toml");
    let mut reg = registry();
    let a = with_photo();
    let pending = reserve(&mut reg, "op", &a, &keys).unwrap().pending;
    // Cut after EF05 got its first records: the card information exists and says not issued.
    let mut card = Faulty {
        card: blank_card(8),
        sent: 0,
        at: 28,
        fault: Fault::Before,
        writes: vec![],
        fired: false,
    };
    issue_pending(
        &mut reg,
        "op",
        &mut card,
        &keys,
        &Profile::wenzhou(),
        &pending,
        &mut |_| {},
    )
    .unwrap_err();
    let e = read_card(
        &mut card.card,
        &keys,
        &Profile::wenzhou(),
        ReadOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(e, host_lib::ssse::ReadError::Unfinished { .. }),
        "{e}"
    );
    assert!(
        e.to_string().contains("personalization did not finish"),
        "{e}"
    );
}

/// Sends one APDU to a simulated card: (data, SW).
fn send(card: &mut SimTransport, apdu: &str) -> (Vec<u8>, u16) {
    let mut r = card
        .transmit(&hex::decode(apdu.replace(' ', "")).unwrap())
        .unwrap();
    let sw = r.split_off(r.len() - 2);
    (r, u16::from_be_bytes([sw[0], sw[1]]))
}

#[test]
fn the_issued_purse_loads_and_pays_with_the_key_sets_keys() {
    use host_lib::keys::purse::{TYPE_EP_LOAD, TYPE_EP_PURCHASE};
    use host_lib::keys::{
        HostTime, KeyRef, Load, LoadInit, PurchaseInit, PurchaseRequest, TerminalCounter,
    };
    for file in ["dev.toml", "dev-sm4.toml"] {
        let keys = keys(file).with_terminal_counter(TerminalCounter::in_memory(0));
        let mut reg = registry();
        let pending = reserve(&mut reg, "op", &sample()[1], &keys)
            .unwrap()
            .pending;
        let mut card = blank_card(77);
        issue_pending(
            &mut reg,
            "op",
            &mut card,
            &keys,
            &Profile::wenzhou(),
            &pending,
            &mut |_| {},
        )
        .unwrap();
        let h = HistoricalBytes::wenzhou(77u32.to_be_bytes());
        let factors = CardData::from_pending(&pending, &h).factors(&h).unwrap();
        let key = |n| KeyRef::new(n, &factors);
        let at = HostTime {
            date: [0x20, 0x26, 0x01, 0x10],
            time: [0x10, 0x31, 0x00],
        };
        let terminal = [0x00, 0x00, 0x01, 0x00, 0x00, 0x50];

        assert_eq!(
            send(&mut card, "00A4040009 A00000000386980701 00").1,
            0x9000
        );
        // Load 100.00 yuan into the EP with DLK 01.
        let (r, sw) = send(&mut card, "805000020B 01 00002710 000001000050 10");
        assert_eq!(sw, 0x9000, "{file}");
        let init = LoadInit::parse(&r).unwrap();
        let load = Load {
            amount: 10_000,
            txn_type: TYPE_EP_LOAD,
            terminal_id: terminal,
        };
        let mac2 = keys.load_mac2(key("DLK"), &init, &load, &at).unwrap();
        let (tac, sw) = send(
            &mut card,
            &format!("805200000B 20260110 103100 {} 04", hex::encode(mac2)),
        );
        assert_eq!(sw, 0x9000, "{file}");
        keys.verify_load_tac(key("DTK"), &init, &load, &at, &tac)
            .unwrap();
        // Pay 12.34 with DPK 01; the PSAM side checks MAC2 and the TAC.
        let (r, sw) = send(&mut card, "805001020B 01 000004D2 000001000050 0F");
        assert_eq!(sw, 0x9000, "{file}");
        let init = PurchaseInit::parse(&r).unwrap();
        let mac1 = keys
            .purchase_mac1(
                key("DPK"),
                &init,
                &PurchaseRequest {
                    amount: 1234,
                    txn_type: TYPE_EP_PURCHASE,
                    terminal_id: terminal,
                    at,
                },
            )
            .unwrap();
        let (r, sw) = send(
            &mut card,
            &format!("805401000F {} 08", hex::encode(mac1.debit_data())),
        );
        assert_eq!(sw, 0x9000, "{file}");
        keys.verify_purchase_mac2(key("DPK"), &init, &mac1.purchase, &r[4..])
            .unwrap();
        keys.verify_purchase_tac(key("DTK"), &mac1.purchase, &r[..4])
            .unwrap();
        assert_eq!(
            send(&mut card, "805C000204"),
            (hex::decode("0000223E").unwrap(), 0x9000)
        );
        // The log has both; the ED opens with the initial PIN only.
        let (log, sw) = send(&mut card, "00B201C400");
        assert_eq!((sw, log[9]), (0x9000, TYPE_EP_PURCHASE));
        assert_eq!(send(&mut card, "805C000104").1, 0x6982);
        assert_eq!(send(&mut card, "0020000003 123456").1, 0x9000);
        assert_eq!(send(&mut card, "805C000104"), (vec![0, 0, 0, 0], 0x9000));
        // Over the maximum balance of 1,000.00 yuan.
        assert_eq!(
            send(&mut card, "805000020B 01 000186A0 000001000050 10").1,
            0x9401
        );
    }
}

/// A card finished on one day whose registry step failed (the session ended before
/// `complete_issue`) is completed by a re-run on a later day: the registry keeps the dates the card
/// was written with, so the read-back matches and nothing is personalized twice.
#[test]
fn a_card_finished_yesterday_is_completed_today() {
    let keys = keys("dev.toml");
    let profile = Profile::wenzhou();
    let clock = Arc::new(ManualClock::new(
        time::macros::datetime!(2026-01-10 02:00 UTC),
    ));
    let mut reg = Registry::open_in_memory(RegistryConfig::default(), clock.clone()).unwrap();
    let applicant = &sample()[4];
    let pending = reserve(&mut reg, "op", applicant, &keys).unwrap().pending;
    let mut card = blank_card(4242);
    // Day 1: the card is personalized, but the registry is never told.
    let data = CardData::from_pending(&pending, &HistoricalBytes::wenzhou(4242u32.to_be_bytes()));
    host_lib::personalize::issue(&mut card, &keys, &profile, &data, &mut |_| {}).unwrap();
    assert_eq!(
        reg.status(&pending.card_number).unwrap(),
        CardStatus::Personalizing
    );
    // Day 2: the operator runs it again.
    clock.advance(time::Duration::days(1));
    let again = reserve(&mut reg, "op", applicant, &keys).unwrap();
    assert!(again.resumed);
    let (report, issued) = issue_pending(
        &mut reg,
        "op",
        &mut card,
        &keys,
        &profile,
        &again.pending,
        &mut |_| {},
    )
    .unwrap();
    assert!(
        matches!(report.found, Found::Issued(_)),
        "{:?}",
        report.found
    );
    assert_eq!(issued.card_number, pending.card_number);
    assert_eq!(
        reg.status(&pending.card_number).unwrap(),
        CardStatus::Active
    );
    assert_card_holds(&mut card, &keys, applicant, &again.pending, ReadMode::ByTag);
}
