//! Applications on demand and application blocks on an issued simulated card: the public-services
//! application added, read, switched off and on, updated, blocked for good; the purse switched off
//! and blocked; the blacklist guard's identification; and an enable cut at every APDU (before
//! it, inside its writes, with its answer lost) finished by running it again.

use std::path::PathBuf;
use std::sync::Arc;

use card_os::card::HistoricalBytes;
use card_os::nvm::Geometry;
use card_os::sim::PowerCut;
use host_lib::apps::guard::{self, Blacklist};
use host_lib::apps::{targets, AppError, AppTarget, Enabled, OnCard, Session};
use host_lib::holder::{input, Applicant, Validator};
use host_lib::keys::KeySet;
use host_lib::personalize::register::{issue_pending, reserve};
use host_lib::profile::Profile;
use host_lib::registry::{ManualClock, Registry, RegistryConfig};
use host_lib::transport::sim::SimTransport;
use host_lib::transport::{Error, Transport};

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors")
}

fn keys(file: &str) -> KeySet {
    KeySet::load(&vectors().join("keys").join(file)).unwrap()
}

fn registry() -> Registry {
    let clock = Arc::new(ManualClock::new(
        time::macros::datetime!(2026-01-10 02:00 UTC),
    ));
    Registry::open_in_memory(RegistryConfig::default(), clock).unwrap()
}

fn applicant() -> Applicant {
    let v = Validator::new(time::macros::date!(2026 - 01 - 10));
    input::load_csv(&vectors().join("applicants/sample.csv"), &v)
        .unwrap()
        .remove(3)
        .result
        .unwrap()
}

/// An issued simulated card (and its registry).
fn issued(keys: &KeySet) -> (SimTransport, Registry) {
    let mut reg = registry();
    let pending = reserve(&mut reg, "op", &applicant(), keys).unwrap().pending;
    let mut card =
        SimTransport::blank(Geometry::DEFAULT, &HistoricalBytes::wenzhou([0, 0, 0, 9])).unwrap();
    issue_pending(
        &mut reg,
        "op",
        &mut card,
        keys,
        &Profile::wenzhou(),
        &pending,
        &mut |_| {},
    )
    .unwrap();
    card.reset().unwrap();
    (card, reg)
}

fn target(name: &str) -> AppTarget {
    targets(&Profile::wenzhou())
        .into_iter()
        .find(|t| t.name == name)
        .unwrap()
}

fn set(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn public_application_on_demand_with_both_key_sets() {
    for file in ["dev.toml", "dev-sm4.toml"] {
        let keys = keys(file);
        let (mut card, reg) = issued(&keys);
        let profile = Profile::wenzhou();
        let public = target("public");
        let def = public.definition.clone().unwrap();
        let mut s = Session::new(&mut card, &keys);
        let id = s.identify().unwrap();
        assert_eq!(reg.status(&id.card_number).unwrap().as_str(), "active");
        assert_eq!(s.probe(&public).unwrap(), OnCard::Absent);

        let values = set(&[("library", "WZL-000123"), ("provident-fund", "GJJ/77")]);
        let before = s.apdus();
        let done = s.enable(&id, &profile, &public, false, &values).unwrap();
        assert_eq!(done, Enabled::Added, "{file}");
        println!("{file}: enable public: {} APDUs", s.apdus() - before);
        let fields = s.read_fields(&def).unwrap();
        assert_eq!(
            fields,
            set(&[
                ("library", "WZL-000123"),
                ("health-record", ""),
                ("provident-fund", "GJJ/77")
            ])
        );

        // Off, and on again with a new value.
        assert_eq!(s.disable(&id, &public).unwrap(), OnCard::Enabled);
        assert!(matches!(
            s.read_fields(&def),
            Err(AppError::Refused(m)) if m.contains("disabled")
        ));
        let done = s
            .enable(
                &id,
                &profile,
                &public,
                true,
                &set(&[("health-record", "H-9")]),
            )
            .unwrap();
        assert_eq!(done, Enabled::Unblocked);
        assert_eq!(
            s.read_fields(&def).unwrap()[1],
            set(&[("health-record", "H-9")])[0]
        );
        // Enabled already: values update the records.
        let done = s
            .enable(&id, &profile, &public, true, &set(&[("library", "L2")]))
            .unwrap();
        assert_eq!(done, Enabled::AlreadyEnabled);
        assert_eq!(s.read_fields(&def).unwrap()[0].1, "L2");

        // Bad values are refused before any APDU changes anything.
        let e = s
            .enable(&id, &profile, &public, true, &set(&[("shoe-size", "42")]))
            .unwrap_err();
        assert!(
            matches!(e, AppError::Usage(ref m) if m.contains("no field")),
            "{e}"
        );

        // For good: nothing brings it back.
        assert_eq!(s.block_for_good(&id, &public).unwrap(), OnCard::Enabled);
        assert!(matches!(
            s.enable(&id, &profile, &public, true, &[]),
            Err(AppError::PermanentlyBlocked)
        ));
        assert!(matches!(
            s.disable(&id, &public),
            Err(AppError::PermanentlyBlocked)
        ));
        assert_eq!(s.block_for_good(&id, &public).unwrap(), OnCard::Blocked);
    }
}

#[test]
fn purse_switched_off_on_and_blocked() {
    let keys = keys("dev.toml");
    let (mut card, _reg) = issued(&keys);
    let profile = Profile::wenzhou();
    let purse = target("purse");
    let mut s = Session::new(&mut card, &keys);
    let id = s.identify().unwrap();
    assert_eq!(s.probe(&purse).unwrap(), OnCard::Enabled);
    s.disable(&id, &purse).unwrap();
    assert_eq!(s.probe(&purse).unwrap(), OnCard::Disabled);
    assert_eq!(
        s.enable(&id, &profile, &purse, false, &[]).unwrap(),
        Enabled::Unblocked
    );
    let e = s
        .enable(&id, &profile, &purse, true, &set(&[("x", "1")]))
        .unwrap_err();
    assert!(e.to_string().contains("no fields"), "{e}");
    assert_eq!(s.block_for_good(&id, &purse).unwrap(), OnCard::Enabled);
    assert_eq!(s.probe(&purse).unwrap(), OnCard::Blocked);
    // A purse is never added on demand.
    let public_only = AppTarget {
        df_name: b"NOT.ON.CARD".to_vec(),
        ..purse.clone()
    };
    let e = s
        .enable(&id, &profile, &public_only, false, &[])
        .unwrap_err();
    assert!(e.to_string().contains("cannot be added afterwards"), "{e}");
}

#[test]
fn the_guard_identifies_an_issued_card_by_ef05() {
    let keys = keys("dev.toml");
    let (mut card, mut reg) = issued(&keys);
    let number = {
        let mut s = Session::new(&mut card, &keys);
        s.identify().unwrap().card_number
    };
    let now = reg.now();
    let clean = Blacklist::from_registry(&reg).unwrap();
    let v = guard::check(&mut card, &clean, Some(&reg), None, now).unwrap();
    assert_eq!(v.identity.card_number.as_ref(), Some(&number));
    assert_eq!(v.identity.source, "ef05");
    assert!(!v.refused());
    reg.report_loss("op", &number).unwrap();
    let listed = Blacklist::from_registry(&reg).unwrap();
    let v = guard::check(&mut card, &listed, None, None, now).unwrap();
    assert!(v.refused());
    assert!(guard::refusal_text(&v).contains("lost since"));
    // A purse serial that disagrees with EF05 is refused even when not listed.
    let wrong = [0, 0, 0x33, 0x03, 0, 0, 0, 0, 0x99, 0x99];
    let v = guard::check(&mut card, &clean, None, Some(&wrong), now).unwrap();
    assert!(v.inconsistent.is_some() && v.refused(), "{v:?}");
}

/// A simulated card pulled out at APDU `at`: before it, inside its first write, or right after
/// it (the answer lost).
struct Faulty {
    card: SimTransport,
    sent: usize,
    at: usize,
    fault: u8,
    fired: bool,
}

impl Transport for Faulty {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, Error> {
        let n = self.sent;
        self.sent += 1;
        if n != self.at || self.fired {
            return self.card.transmit(command);
        }
        self.fired = true;
        let removed = Error::CardRemoved {
            reader: "faulty".into(),
        };
        match self.fault {
            0 => Err(removed),
            1 => {
                self.card
                    .card_mut()
                    .nvm_mut()
                    .arm_cut(PowerCut { write: 0, bytes: 7 });
                let r = self.card.transmit(command);
                self.card.card_mut().nvm_mut().disarm_cut();
                r?;
                Err(removed)
            }
            _ => {
                self.card.transmit(command)?;
                Err(removed)
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

#[test]
fn an_enable_cut_at_any_apdu_is_finished_by_running_it_again() {
    let keys = keys("dev.toml");
    let profile = Profile::wenzhou();
    let public = target("public");
    let def = public.definition.clone().unwrap();
    let values = set(&[("library", "CUT-1"), ("health-record", "CUT-2")]);
    // The issued card as an image file, loaded afresh (not live) for every run.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("issued.img");
    {
        use card_os::sim::image;
        let base = issued(&keys).0.into_card();
        let header =
            image::ImageHeader::new(Geometry::DEFAULT.capacity, Geometry::DEFAULT.page_size, 0);
        image::save(&path, &header, base.nvm()).unwrap();
    }
    let fresh = || {
        let (_, nvm) = card_os::sim::image::load(&path).unwrap();
        let card = card_os::sim::SimCard::from_nvm(nvm)
            .unwrap_or_else(|_| panic!("the issued card powers up"));
        SimTransport::from_card(card, "issued card")
    };
    let clean_apdus = {
        let mut card = fresh();
        let mut s = Session::new(&mut card, &keys);
        let id = s.identify().unwrap();
        let before = s.apdus();
        s.enable(&id, &profile, &public, false, &values).unwrap();
        s.apdus() - before
    };
    let mut runs = 0;
    for at in 0..clean_apdus {
        for fault in 0..3u8 {
            let mut card = fresh();
            let id = Session::new(&mut card, &keys).identify().unwrap();
            let mut faulty = Faulty {
                card,
                sent: 0,
                at,
                fault,
                fired: false,
            };
            let first =
                Session::new(&mut faulty, &keys).enable(&id, &profile, &public, false, &values);
            if !faulty.fired {
                continue;
            }
            assert!(
                first.is_err(),
                "cut {fault} at {at}: the first run succeeded"
            );
            // The card is back: powered up again; the registry recorded nothing, so a DF found
            // is an interrupted run's.
            let mut card = faulty.card;
            card.reset().unwrap();
            let mut s = Session::new(&mut card, &keys);
            let done = s
                .enable(&id, &profile, &public, false, &values)
                .unwrap_or_else(|e| panic!("cut {fault} at {at}: the second run failed: {e}"));
            assert!(
                matches!(done, Enabled::Added | Enabled::Rebuilt),
                "cut {fault} at {at}: {done:?}"
            );
            assert_eq!(
                s.read_fields(&def).unwrap(),
                set(&[
                    ("library", "CUT-1"),
                    ("health-record", "CUT-2"),
                    ("provident-fund", "")
                ]),
                "cut {fault} at {at}"
            );
            runs += 1;
        }
    }
    println!("{runs} cut enables finished ({clean_apdus} APDUs per enable)");
    assert!(runs > 2 * clean_apdus, "{runs} runs");
}
