//! `citizencard keys init` and `keys show`: files made private, no overwriting without --force,
//! no key bytes in any output, errors that name the key and field. Needs no card or pcscd.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_citizencard"))
        .args(args)
        .env_remove("CITIZENCARD_READER")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The `value = "…"` strings of a key-set file.
fn key_values(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("value = \""))
        .map(|v| v.trim_end_matches('"').to_owned())
        .collect()
}

fn assert_no_key_bytes(output: &str, values: &[String]) {
    let upper = output.to_uppercase();
    for v in values.iter().filter(|v| !v.chars().all(|c| c == 'F')) {
        assert!(
            !upper.contains(&v[..16]) && !upper.contains(&v[16..]),
            "key bytes {v} in output:\n{output}"
        );
    }
}

fn dev_set(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../test-vectors/keys")
        .join(name)
}

#[cfg(unix)]
#[test]
fn init_makes_a_private_random_key_set_and_never_overwrites_silently() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wenzhou-2025.toml");
    let path = file.to_str().unwrap();

    let out = run(&["keys", "init", path, "--description", "Wenzhou issuer"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("key set wenzhou-2025"), "{stdout}");
    for word in [
        "TRANSPORT",
        "MF_MK",
        "RKSSSE",
        "UKSSSE",
        "DLK",
        "DPK",
        "DTK",
        "3des",
    ] {
        assert!(stdout.contains(word), "{word} missing from:\n{stdout}");
    }
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let first = key_values(&file);
    assert_eq!(first.len(), host_lib::keys::catalogue::STANDARD_KEYS.len());
    assert_no_key_bytes(&stdout, &first);

    // A second init refuses, and leaves the file alone.
    let out = run(&["keys", "init", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(key_values(&file), first);

    // --force makes new keys; --json tells what was made.
    let out = run(&[
        "--json",
        "keys",
        "init",
        path,
        "--force",
        "--algorithm",
        "sm4",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["id"], "wenzhou-2025");
    assert_eq!(json["development"], false);
    assert_eq!(
        json["keys"].as_array().unwrap().len(),
        host_lib::keys::catalogue::STANDARD_KEYS.len()
    );
    assert_eq!(json["keys"][1]["name"], "MF_MK");
    assert_eq!(json["keys"][1]["algorithm"], "sm4");
    assert_eq!(json["keys"][0]["algorithm"], "3des");
    let second = key_values(&file);
    assert_ne!(first[1], second[1]);
    assert_no_key_bytes(&text(&out.stdout), &second);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // show reads it back: same check values, no key bytes, no warning for a private real set.
    let out = run(&["keys", "show", path]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stderr), "");
    assert_no_key_bytes(&text(&out.stdout), &second);
    let kcv = json["keys"][1]["kcv"].as_str().unwrap();
    assert!(text(&out.stdout).contains(kcv));

    // A copy readable by others is flagged.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&["keys", "show", path]);
    assert!(
        text(&out.stderr).contains("mode 0644"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn init_takes_the_transport_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    let path = file.to_str().unwrap();
    let out = run(&[
        "keys",
        "init",
        path,
        "--id",
        "batch-7",
        "--transport-key",
        "01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F 10",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("key set batch-7"));
    assert_eq!(key_values(&file)[0], "0102030405060708090A0B0C0D0E0F10");
    assert!(!text(&out.stdout).contains("0102030405060708"));
    let out = run(&[
        "keys",
        "init",
        dir.path().join("u.toml").to_str().unwrap(),
        "--transport-key",
        "0102",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("transport key: 2 bytes"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn show_lists_the_development_set_and_warns() {
    let path = dev_set("dev.toml");
    let out = run(&["keys", "show", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("key set:     citizencard-dev-3des"),
        "{stdout}"
    );
    assert!(stdout.contains("development: yes"), "{stdout}");
    // TRANSPORT (16 x FF): its check value, not its bytes.
    assert!(
        stdout.contains("TRANSPORT  3des       none                00       CAAAAF"),
        "{stdout}"
    );
    assert!(stdout.contains("RKSSSE") && stdout.contains("social-security"));
    assert!(stdout.contains("DLK") && stdout.contains("application-serial"));
    assert!(text(&out.stderr).contains("PUBLIC DEVELOPMENT key set"));
    assert_no_key_bytes(&stdout, &key_values(&path));

    let sm4 = dev_set("dev-sm4.toml");
    let out = run(&["--json", "keys", "show", sm4.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["development"], true);
    assert_eq!(json["keys"][2]["algorithm"], "sm4");
    assert_no_key_bytes(&text(&out.stdout), &key_values(&sm4));
}

#[test]
fn show_names_the_key_and_field_that_are_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        "format = 1\n[key_set]\nid = \"b\"\ndevelopment = false\n\
         [keys.DLK]\nalgorithm = \"3des\"\nvalue = \"00112233445566778899AABBCCDDEE\"\n\
         diversification = \"application-serial\"\nversion = 1\n\
         [keys.DPK]\nalgorithm = \"sm5\"\nvalue = \"00112233445566778899AABBCCDDEEFF\"\n\
         diversification = \"application-serial\"\nversion = 1\n",
    )
    .unwrap();
    let out = run(&["keys", "show", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("2 problems"), "{stderr}");
    assert!(
        stderr.contains("key DLK, field `value`: 15 bytes, a 3des key has 16"),
        "{stderr}"
    );
    assert!(
        stderr.contains("key DPK, field `algorithm`: \"sm5\" is not one of"),
        "{stderr}"
    );
    assert!(!stderr.contains("00112233"), "{stderr}");

    let out = run(&[
        "keys",
        "show",
        dir.path().join("none.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("none.toml"));
}

/// Issues the sample applicant onto a simulated card with `keys`; returns the output.
fn issue_with(dir: &Path, keys: &Path, extra: &[&str]) -> Output {
    let applicant =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/applicants/one.toml");
    let mut args: Vec<String> = vec![
        "--registry".into(),
        dir.join("registry.db").to_str().unwrap().to_owned(),
        "--operator".into(),
        "clerk".into(),
        "issue".into(),
        "--applicant".into(),
        applicant.to_str().unwrap().to_owned(),
        "--sim-dir".into(),
        dir.join("cards").to_str().unwrap().to_owned(),
        "--keys".into(),
        keys.to_str().unwrap().to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args)
}

#[test]
fn the_transport_key_is_random_and_the_public_one_needs_consent() {
    let dir = tempfile::tempdir().unwrap();
    // Two fresh sets: random transport keys, different, neither the FMCOS default.
    let (a, b) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    for f in [&a, &b] {
        let out = run(&["keys", "init", f.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let (ta, tb) = (key_values(&a)[0].clone(), key_values(&b)[0].clone());
    assert_ne!(ta, "F".repeat(32));
    assert_ne!(ta, tb);
    // A card personalized with a random transport key: issued and verified.
    let out = issue_with(dir.path(), &a, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // The public default is refused at init...
    let ff = "FF".repeat(16);
    let pub_set = dir.path().join("public.toml");
    let out = run(&[
        "keys",
        "init",
        pub_set.to_str().unwrap(),
        "--transport-key",
        &ff,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("public FMCOS factory default"),
        "{}",
        text(&out.stderr)
    );
    assert!(!pub_set.exists());
    // ...accepted knowingly, with a warning...
    let out = run(&[
        "keys",
        "init",
        pub_set.to_str().unwrap(),
        "--transport-key",
        &ff,
        "--allow-default-transport-key",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["keys", "show", pub_set.to_str().unwrap()]);
    assert!(text(&out.stderr).contains("public FMCOS default"));
    // ...and refused again at personalization, before any card or registry change.
    let other = tempfile::tempdir().unwrap();
    let out = issue_with(other.path(), &pub_set, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("--allow-default-transport-key"),
        "{}",
        text(&out.stderr)
    );
    assert!(!other.path().join("registry.db").exists());
    let out = issue_with(other.path(), &pub_set, &["--allow-default-transport-key"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("accepted with --allow-default-transport-key"),
        "{}",
        text(&out.stderr)
    );
}
