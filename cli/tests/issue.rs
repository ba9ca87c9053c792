//! `citizencard issue` and `info` on simulated cards (no pcscd): the sample batch issued and
//! read back, the bad batch refused row by row, unusable profiles refused before any card, the
//! development-key warning, the plan.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn citizencard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_citizencard"))
        .args(args)
        .env_remove("CITIZENCARD_READER")
        .env_remove("CITIZENCARD_REGISTRY")
        .env_remove("CITIZENCARD_REGISTRY_CONFIG")
        .env_remove("CITIZENCARD_KEYS")
        .env("CITIZENCARD_OPERATOR", "test-operator")
        // No pcscd for these tests, whatever runs on the machine.
        .env(
            "PCSCLITE_CSOCK_NAME",
            "/nonexistent/citizencard-test/pcscd.comm",
        )
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn images(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The CSV rows of a file as maps of column → value.
fn csv_rows(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn the_sample_batch_is_issued_and_info_shows_each_applicant_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cards = dir.path().join("cards");
    let reg = dir.path().join("registry.db");
    let batch = vectors().join("applicants/sample.csv");
    let out = citizencard(&[
        "issue",
        "--batch",
        s(&batch),
        "--sim-dir",
        s(&cards),
        "--registry",
        s(&reg),
    ]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("WARNING: key set citizencard-dev-3des is a PUBLIC development key set"),
        "{stderr}"
    );
    assert!(
        stdout.contains("Summary: 23 issued, 0 not issued."),
        "{stdout}"
    );
    assert!(stdout.contains("Per card: "), "{stdout}");
    let imgs = images(&cards);
    assert_eq!(imgs.len(), 23);

    let rows = csv_rows(&batch);
    for img in &imgs {
        let out = citizencard(&["--sim", s(img), "info", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let h = &v["holder"];
        let id = h["id_number"].as_str().unwrap();
        let row = rows.iter().find(|r| r["id_number"] == id).unwrap();
        assert_eq!(h["name"], row["name"].as_str());
        assert_eq!(h["sex"]["code"], row["sex"].as_str());
        assert_eq!(h["ethnicity"]["code"], row["ethnicity"].as_str());
        assert_eq!(h["birthplace"]["code"], row["birthplace"].as_str());
        assert_eq!(h["birth_date"], row["birth_date"].as_str());
        let card = v["issuer"]["card_number"].as_str().unwrap();
        assert_eq!(img.file_stem().unwrap().to_str().unwrap(), card);
        assert_eq!(v["card_info"]["issued"], true);
        assert_eq!(v["card_info"]["card_number"], card);
        let class = row["card_class"].as_str();
        assert_eq!(
            v["issuer"]["card_class"]["code"],
            if class.is_empty() { "3" } else { class }
        );
        assert_eq!(v["photo_summary"].is_null(), row["photo"].is_empty());
    }

    // The table, by tag this time, with the Chinese name and the ethnicity's name.
    let first = &imgs[0];
    let out = citizencard(&["--sim", s(first), "info", "--by-tag"]);
    let t = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for want in [
        "测试张一",
        "01 (汉族)",
        "330302198503120111",
        "1985-03-12",
        "330302 浙江省温州市鹿城区",
        "W00000018",
        "issued (profile wenzhou-default-1",
        "items read by tag",
    ] {
        assert!(t.contains(want), "{want} missing:\n{t}");
    }

    // The same batch again with the same cards: everyone holds a card, and it is the card at
    // hand; nothing changes (a re-run after a station stopped just after completing).
    let out = citizencard(&[
        "issue",
        "--batch",
        s(&batch),
        "--sim-dir",
        s(&cards),
        "--registry",
        s(&reg),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout)
            .contains("Summary: 0 issued, 23 issued already (the card at hand), 0 not issued."),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(images(&cards).len(), 23);
    // With other cards (another directory): everyone already holds a card; refused.
    let other = cards.with_file_name("other-cards");
    let out = citizencard(&[
        "issue",
        "--batch",
        s(&batch),
        "--sim-dir",
        s(&other),
        "--registry",
        s(&reg),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("Summary: 0 issued, 23 not issued."));
    assert_eq!(images(&other).len(), 0);
}

#[test]
fn the_bad_batch_issues_nothing_and_names_every_fault() {
    let dir = tempfile::tempdir().unwrap();
    let cards = dir.path().join("cards");
    let reg = dir.path().join("registry.db");
    let out = citizencard(&[
        "issue",
        "--batch",
        s(&vectors().join("applicants/bad.csv")),
        "--sim-dir",
        s(&cards),
        "--registry",
        s(&reg),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(images(&cards).is_empty(), "no card may be made");
    let expected = std::fs::read_to_string(vectors().join("applicants/bad-expected.csv")).unwrap();
    for line in expected.lines().skip(1) {
        let mut cols = line.splitn(3, ',');
        let (n, field) = (cols.next().unwrap(), cols.next().unwrap());
        let reported = stdout
            .lines()
            .find(|l| l.starts_with(&format!("line {n}: ")))
            .unwrap_or_else(|| panic!("line {n} not reported:\n{stdout}"));
        assert!(
            reported.contains(field),
            "line {n} should name {field}: {reported}"
        );
    }
    assert!(
        stdout.contains("Summary: 0 issued, 22 not issued."),
        "{stdout}"
    );
}

#[test]
fn one_applicant_onto_one_image_then_info() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("card.img");
    let reg = dir.path().join("registry.db");
    let out = citizencard(&["sim", "new", "--image", s(&img), "--serial", "0000BEEF"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let sm4 = vectors().join("keys/dev-sm4.toml");
    let out = citizencard(&[
        "--sim",
        s(&img),
        "issue",
        "--applicant",
        s(&vectors().join("applicants/one.toml")),
        "--keys",
        s(&sm4),
        "--registry",
        s(&reg),
        "--json",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["status"], "issued");
    assert_eq!(first["report"]["chip_serial"], "0000BEEF");
    assert_eq!(first["report"]["key_set"], "citizencard-dev-sm4");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["summary"]["issued"], 1);

    // info needs the key set that issued the card: RKSSSE differs between the sets.
    let out = citizencard(&["--sim", s(&img), "info", "--keys", s(&sm4), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ssse"]["algorithm"], 3);
    assert_eq!(v["holder"]["name"], "测试张一");
    let out = citizencard(&["--sim", s(&img), "info"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("issued with key set citizencard-dev-sm4, not citizencard-dev-3des"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unusable_inputs_are_refused_before_any_card() {
    let dir = tempfile::tempdir().unwrap();
    let cards = dir.path().join("cards");
    let reg = dir.path().join("registry.db");
    let one = vectors().join("applicants/one.toml");
    // A profile that cannot work.
    let profile = dir.path().join("small.toml");
    let text_of = host_lib::profile::WENZHOU_TOML.replace("space = 8192", "space = 4000");
    std::fs::write(&profile, text_of).unwrap();
    let out = citizencard(&[
        "issue",
        "--applicant",
        s(&one),
        "--profile",
        s(&profile),
        "--sim-dir",
        s(&cards),
        "--registry",
        s(&reg),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("df 3F00/DDF1: needs"), "{err}");
    assert!(!cards.exists() && !reg.exists(), "nothing may be touched");
    // A key set without a key the profile names.
    let keys = dir.path().join("keys.toml");
    let ks = std::fs::read_to_string(vectors().join("keys/dev.toml"))
        .unwrap()
        .replace("[keys.RKSSSE]", "[keys.RKSSSE_OLD]");
    std::fs::write(&keys, ks).unwrap();
    let out = citizencard(&[
        "issue",
        "--applicant",
        s(&one),
        "--keys",
        s(&keys),
        "--sim-dir",
        s(&cards),
        "--registry",
        s(&reg),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("key RKSSSE is not in key set"),
        "{}",
        text(&out.stderr)
    );
    assert!(!cards.exists() && !reg.exists());
    // A batch on one image, a batch on a reader without --wait.
    let batch = vectors().join("applicants/sample.csv");
    let out = citizencard(&["--sim", "x.img", "issue", "--batch", s(&batch)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--sim-dir"));
    let out = citizencard(&["issue", "--batch", s(&batch), "--registry", s(&reg)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("needs --wait"));
    assert!(!reg.exists());
}

#[test]
fn the_plan_lists_every_step() {
    let out = citizencard(&[
        "issue",
        "--applicant",
        s(&vectors().join("applicants/one.toml")),
        "--plan",
    ]);
    let t = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{t}{}", text(&out.stderr));
    assert!(t.contains("Personalization: 85 APDUs"), "{t}");
    assert!(
        t.contains("replace the master with MF_MK (encrypted)"),
        "{t}"
    );
    assert!(
        t.contains("the card information with the issued state (last)"),
        "{t}"
    );
    let last_step = t.lines().rfind(|l| l.contains(". [")).unwrap();
    assert!(last_step.contains("issued state"), "{last_step}");
}

#[test]
fn help_explains_issue_and_info() {
    let out = citizencard(&["issue", "--help"]);
    let h = text(&out.stdout);
    for w in [
        "--applicant",
        "--batch",
        "--keys",
        "--profile",
        "--registry",
        "--sim-dir",
        "PUBLIC development key set",
        "running the same command again",
        "--plan",
    ] {
        assert!(h.contains(w), "issue --help lacks {w}:\n{h}");
    }
    let out = citizencard(&["info", "--help"]);
    let h = text(&out.stdout);
    for w in ["--by-tag", "--photo", "--keys", "--json"] {
        assert!(h.contains(w), "info --help lacks {w}:\n{h}");
    }
}

#[test]
fn an_issued_card_works_with_the_purse_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let cards = dir.path().join("cards");
    let reg = dir.path().join("registry.db");
    let state = dir.path().join("terminal");
    let out = citizencard(&[
        "issue",
        "--applicant",
        s(&vectors().join("applicants/one.toml")),
        "--sim-dir",
        s(&cards),
        "--registry",
        s(&reg),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let img = cards.join("W00000018.img");
    let purse = |args: &[&str]| {
        let mut all = vec!["--sim", s(&img), "--registry", s(&reg), "purse"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--state", s(&state)]);
        citizencard(&all)
    };
    let out = purse(&["load", "100"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = purse(&["purchase", "12.34"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = purse(&["balance"]);
    let t = text(&out.stdout);
    assert!(
        t.contains("card 00003303000000000001: balance 87.66 yuan"),
        "{t}"
    );
}

#[test]
fn a_named_station_is_recorded_with_every_change_it_makes() {
    let dir = tempfile::tempdir().unwrap();
    let cards = dir.path().join("cards");
    let reg = dir.path().join("registry.db");
    let sample = std::fs::read_to_string(vectors().join("applicants/sample.csv")).unwrap();
    let batch = dir.path().join("two.csv");
    std::fs::write(
        &batch,
        sample.lines().take(3).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    // The rows name their photos relative to the batch file.
    std::os::unix::fs::symlink(
        vectors().join("applicants/photos"),
        dir.path().join("photos"),
    )
    .unwrap();
    let named = |extra: &[&str]| {
        let mut args = vec!["--station", "lucheng-centre/desk-2", "--registry", s(&reg)];
        args.extend_from_slice(extra);
        citizencard(&args)
    };
    let out = named(&["issue", "--batch", s(&batch), "--sim-dir", s(&cards)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = named(&["registry", "audit", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let records: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_station: Vec<&str> = records
        .iter()
        .filter(|r| r["action"].as_str().is_some_and(|a| a.contains("issue")))
        .map(|r| r["station"].as_str().unwrap_or(""))
        .collect();
    assert!(by_station.len() >= 4, "{records:?}");
    assert!(
        by_station
            .iter()
            .all(|s| s.starts_with("lucheng-centre/desk-2@")),
        "{by_station:?}"
    );
    let untouched = dir.path().join("untouched.db");
    let out = citizencard(&[
        "--station",
        "desk\u{7}",
        "--registry",
        s(&untouched),
        "registry",
        "list",
    ]);
    assert!(
        !untouched.exists(),
        "a refused name must not create the registry"
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("a station name is 1 to 64 printable characters"),
        "{}",
        text(&out.stderr)
    );
}
