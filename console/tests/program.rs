//! The `citizencard-console` program's own options (no server started).

use std::process::Command;

use host_lib::registry::operators::Role;
use host_lib::registry::{Registry, RegistryConfig};

fn console() -> Command {
    Command::new(env!("CARGO_BIN_EXE_citizencard-console"))
}

#[test]
fn add_operator_stores_a_hash_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry.db");
    let out = console()
        .args([
            "--registry",
            reg.to_str().unwrap(),
            "--add-operator",
            "li:supervisor",
        ])
        .env("CITIZENCARD_CONSOLE_PASSWORD", "a-long-password")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let op = Registry::open(&reg, RegistryConfig::default())
        .unwrap()
        .operator("li")
        .unwrap()
        .unwrap();
    assert_eq!(op.role, Role::Supervisor);
    assert!(op.password_hash.starts_with("$argon2id$"));
    assert!(!op.password_hash.contains("a-long-password"));

    for (spec, password, why) in [
        ("wang:boss", "a-long-password", "the role is"),
        ("wang", "a-long-password", "LOGIN:ROLE"),
        ("wang:operator", "short", "8 characters"),
        ("li:operator", "a-long-password", "exists already"),
    ] {
        let out = console()
            .args(["--registry", reg.to_str().unwrap(), "--add-operator", spec])
            .env("CITIZENCARD_CONSOLE_PASSWORD", password)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{spec}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{spec}: {err}");
    }
}
