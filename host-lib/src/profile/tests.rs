use super::*;
use crate::keys::KeySet;

fn dev(name: &str) -> KeySet {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/keys");
    KeySet::load(&dir.join(name)).unwrap()
}

/// The default profile with `edit` applied to its text.
fn edited(edit: impl FnOnce(&str) -> String) -> Result<Profile, ProfileError> {
    Profile::parse(&edit(WENZHOU_TOML), "edited")
}

fn problems(r: Result<Profile, ProfileError>) -> String {
    match r {
        Ok(_) => panic!("the profile was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_default_profile_is_valid_with_both_development_key_sets() {
    let p = Profile::wenzhou();
    assert_eq!(p.id, "wenzhou-default-1");
    assert_eq!(p.mf().path, vec![MF]);
    p.check_keys(&dev("dev.toml")).unwrap();
    p.check_keys(&dev("dev-sm4.toml")).unwrap();
    let ssse = p.df(&[MF, 0xDDF1]).unwrap();
    assert_eq!(
        hex::encode_upper(&ssse.name),
        "7378312E73682EC9E7BBE1B1A3D5CF",
        "sx1.sh.社会保障 in GBK"
    );
    assert_eq!(ssse.fci_byte(), 0xDD, "C0 | SFI 1D");
    let purse = p.df(&[MF, 0x1001]).unwrap();
    assert_eq!(purse.fci_byte(), 0x95, "80 | SFI 15");
    assert_eq!(hex::encode_upper(&purse.name), "A00000000386980701");
    for (df, aid) in [
        (0xDF01, "D15600000500"),
        (0xDF03, "D15600000502"),
        (0xDF04, "D15600000503"),
    ] {
        assert_eq!(
            hex::encode_upper(&p.df(&[MF, 0xDDF1, df]).unwrap().name),
            aid
        );
    }
    // Privacy (Art. 9): EF05 by anyone; EF06 and the photo only after RKSSSE.
    let ef = |fid| ssse.ef(fid).unwrap();
    assert!(ef(0x0005).read.met(0, 0));
    for fid in [0x0006, 0x0008] {
        assert!(!ef(fid).read.met(0, 0));
        let ReadAccess::After(k) = p.read_access(ssse, ef(fid).read) else {
            panic!("{fid:04X} is readable without a key")
        };
        assert_eq!((k.key_name(), k.id), (Some("RKSSSE"), 0x0A));
    }
    // Writes: UKSSSE's state only.
    let uk = ssse
        .keys
        .iter()
        .find(|k| k.key_name() == Some("UKSSSE"))
        .unwrap();
    assert_eq!(uk.id, 0x12);
    for fid in [0x0005, 0x0006, 0x0008] {
        let w = ef(fid).write;
        assert!(w.met(0, uk.state.unwrap()));
        for k in ssse.keys.iter().filter(|k| k.key_name() != Some("UKSSSE")) {
            if let Some(s) = k.state {
                assert!(!w.met(0, s), "{} may write {fid:04X}", k.describe());
            }
        }
    }
    // Keys are loaded master first.
    assert!(p
        .dfs
        .iter()
        .all(|d| d.keys.first().is_none_or(|k| k.is_master())));
}

#[test]
fn rights() {
    assert!(Right(0xF0).met(0, 0));
    assert!(!Right(0xEF).met(0xF, 0xF));
    assert!(Right(0x0A).met(0xA, 0));
    assert!(!Right(0x0A).met(9, 0xF));
    assert!(Right(0x21).met(0, 1) && Right(0x21).met(0, 2) && !Right(0x21).met(0, 3));
    assert!(!Right(0x22).met(0xF, 1));
}

#[test]
fn key_records_follow_keys_md() {
    let p = Profile::wenzhou();
    let mf = p.mf().master().unwrap();
    assert_eq!(mf.layout_text(), "F9 F0 F0 0A 33 key alg?");
    let purse = p.df(&[MF, 0x1001]).unwrap();
    let dlk = purse
        .keys
        .iter()
        .find(|k| k.key_name() == Some("DLK"))
        .unwrap();
    assert_eq!(dlk.layout_text(), "FF F0 F0 version alg key");
    let damk = purse
        .keys
        .iter()
        .find(|k| k.key_name() == Some("DAMK"))
        .unwrap();
    assert_eq!(damk.layout_text(), "F6 F0 F0 FF 33 key alg?");
    let pin = purse.keys.iter().find(|k| k.kind == KeyKind::Pin).unwrap();
    assert_eq!(
        pin.source,
        KeySource::Pin {
            digits: "123456".into(),
            room: 8
        }
    );
}

#[test]
fn create_file_data() {
    let p = Profile::wenzhou();
    assert_eq!(
        hex::encode_upper(p.mf().create_data()),
        "38FFFF0A0AFFFFFF315041592E5359532E4444463031"
    );
    assert_eq!(
        hex::encode_upper(p.mf().key_file.create_data()),
        "3F00180 1F0FFFF".replace(' ', "")
    );
    let purse = p.df(&[MF, 0x1001]).unwrap();
    let ep = purse.ef(0x0002).unwrap();
    assert_eq!(
        hex::encode_upper(ep.create_data()),
        "2F0208F000FF18000186A0"
    );
    let log = purse.ef(0x0018).unwrap();
    assert_eq!(hex::encode_upper(log.create_data()), "2E0A17F0EFFFFF");
    let pub_info = purse.ef(0x0015).unwrap();
    assert_eq!(hex::encode_upper(pub_info.create_data()), "A8001EF0F0FFFF");
    assert_eq!(pub_info.write_key_id(), 0);
}

#[test]
fn unknown_keys_are_named() {
    let p = edited(|t| t.replace("key = \"RKSSSE\"", "key = \"RKSSSE2\"")).unwrap();
    let e = p.check_keys(&dev("dev.toml")).unwrap_err().to_string();
    assert!(
        e.contains("key RKSSSE2 is not in key set citizencard-dev-3des"),
        "{e}"
    );
    assert!(
        e.contains("df 3F00/DDF1, key external-auth 0A (RKSSSE2)"),
        "{e}"
    );
    // A template field names a key too.
    let p = edited(|t| t.replace("{alg:RKSSSE}", "{alg:NOPE}")).unwrap();
    let e = p.check_keys(&dev("dev.toml")).unwrap_err().to_string();
    assert!(
        e.contains("field {alg:NOPE}: key NOPE is not in key set"),
        "{e}"
    );
}

#[test]
fn a_df_without_key_file_is_refused() {
    let e = problems(edited(|t| {
        t.replacen("[df.key_file]\nspace = 96\nadd = \"0A\"\n", "", 1)
    }));
    assert!(e.contains("df 3F00/DDF1/DF01: no key file"), "{e}");
}

#[test]
fn a_file_in_a_df_without_space_is_refused() {
    let e = problems(edited(|t| t.replacen("space = 512", "space = 200", 1)));
    assert!(e.contains("df 3F00/DDF1/DF01: needs 267 bytes"), "{e}");
    assert!(e.contains("more than its space 200"), "{e}");
}

#[test]
fn a_profile_too_large_for_the_card_is_refused() {
    let e = problems(edited(|t| t.replace("memory = 31335", "memory = 8000")));
    assert!(e.contains("too large for the card"), "{e}");
    let e = problems(edited(|t| t.replace("space = 8192", "space = 40000")));
    assert!(e.contains("too large for the card"), "{e}");
}

#[test]
fn duplicate_fids_and_names_are_refused() {
    let e = problems(edited(|t| t.replace("fid = \"0016\"", "fid = \"0015\"")));
    assert!(e.contains("df 3F00/1001: FID 0015 is used twice"), "{e}");
    let e = problems(edited(|t| {
        t.replace("hex:D15600000502", "hex:D15600000500")
    }));
    assert!(e.contains("DF name D15600000500 is used twice"), "{e}");
    let e = problems(edited(|t| t.replace("id = \"12\"", "id = \"0A\"")));
    assert!(e.contains("two keys of type 39 with id 0A"), "{e}");
}

#[test]
fn recovery_and_security_constraints() {
    // The MF key file must be full, since anyone may add to it.
    let p = edited(|t| t.replacen("space = 24 ", "space = 48 ", 1)).unwrap();
    let e = p.check_keys(&dev("dev.toml")).unwrap_err().to_string();
    assert!(
        e.contains("space 48 must be exactly what its keys take (24)"),
        "{e}"
    );
    // ... and must take its master without authentication.
    let e = problems(edited(|t| t.replacen("add = \"F0\"", "add = \"0A\"", 1)));
    assert!(e.contains("df 3F00, key_file: add right 0A"), "{e}");
    // The MF's erase right must be reachable with the MF master.
    let e = problems(edited(|t| {
        t.replacen("erase = \"0A\"", "erase = \"0B\"", 1)
    }));
    assert!(e.contains("erase right 0B cannot be met"), "{e}");
    // Masters must be updated encrypted, or keys would travel in clear.
    let e = problems(edited(|t| {
        t.replacen("state = \"A\"\n", "state = \"A\"\nupdates = \"mac\"\n", 1)
    }));
    assert!(
        e.contains("a master key must have updates = \"encrypted\""),
        "{e}"
    );
    // A DF master must have the transport key's length (the card keeps a key's length).
    let text = std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/keys/dev.toml"),
    )
    .unwrap()
    .replace(
        "algorithm = \"3des\"\nvalue = \"49974C8564FE92E3DC373E6DAD6DFB01\"\nkcv = \"B938B3\"",
        "algorithm = \"des\"\nvalue = \"49974C8564FE92E3\"",
    );
    let ks = KeySet::from_toml(&text).unwrap();
    let e = Profile::wenzhou().check_keys(&ks).unwrap_err().to_string();
    assert!(
        e.contains("df 3F00/1001, key external-auth 00 (PURSE_MK): a 8-byte key cannot replace the 16-byte transport key"),
        "{e}"
    );
}

#[test]
fn data_that_does_not_fit_is_refused() {
    let e = problems(edited(|t| t.replace("size = 9\n", "size = 8\n")));
    assert!(
        e.contains("ef 001D: data of 9 bytes does not fit its 8"),
        "{e}"
    );
    let e = problems(edited(|t| t.replace("record_len = 18", "record_len = 17")));
    assert!(
        e.contains("issuer-items need 7 records of up to 18 bytes"),
        "{e}"
    );
    let e = problems(edited(|t| t.replacen("size = 4096", "size = 4000", 1)));
    assert!(e.contains("a photo EF of 4000 bytes"), "{e}");
    let e = problems(edited(|t| {
        t.replacen("data = \"issuer-items\"", "data = \"photo\"", 1)
    }));
    assert!(
        e.contains("data photo does not go into a variable EF"),
        "{e}"
    );
    // A MAC-protected EF needs its line-protection key.
    let e = problems(edited(|t| {
        t.replace(
            "key = \"DAMK\"\ntype = \"line-protection\"\nid = \"00\"",
            "key = \"DAMK\"\ntype = \"line-protection\"\nid = \"01\"",
        )
    }));
    assert!(
        e.contains("ef 0015: its writes need a MAC under line-protection key 00"),
        "{e}"
    );
    // A purse needs its log and TAC key.
    let e = problems(edited(|t| {
        t.replacen("log = \"0018\"", "log = \"0019\"", 1)
    }));
    assert!(e.contains("its log 0019 is not an EF of this DF"), "{e}");
    // What is written must be readable back.
    let e = problems(edited(|t| t.replacen("read = \"21\"", "read = \"55\"", 1)));
    assert!(e.contains("read right 55 cannot be met"), "{e}");
}

#[test]
fn syntax_and_types_are_reported_with_their_place() {
    let e = problems(Profile::parse(
        "format = 1\n[profile]\nid = \"x\"\n[[df]]\npath = \"3F00\"\n",
        "t.toml",
    ));
    assert!(e.starts_with("t.toml: the profile cannot be used"), "{e}");
    assert!(e.contains("missing field"), "{e}");
    let e = problems(edited(|t| {
        t.replace(
            "type = \"external-auth\"\nid = \"0A\"",
            "type = \"extern\"\nid = \"0A\"",
        )
    }));
    assert!(e.contains("\"extern\" is not a key type"), "{e}");
    let e = problems(edited(|t| {
        t.replacen("create = \"0A\"", "create = \"0Z\"", 1)
    }));
    assert!(
        e.contains("df 3F00, create: \"0Z\" is not a byte in hex"),
        "{e}"
    );
    let e = problems(edited(|t| {
        t.replace("path = \"3F00/DDF1/DF01\"", "path = \"3F00/DDF2/DF01\"")
    }));
    assert!(
        e.contains("its parent 3F00/DDF2 must be declared before it"),
        "{e}"
    );
    let e = problems(edited(|t| t.replace("data = \"card-info\"", "")));
    assert!(e.contains("no EF with data = \"card-info\""), "{e}");
    let e = problems(edited(|t| {
        t.replace("id = \"wenzhou-default-1\"", "id = \"a b\"")
    }));
    assert!(e.contains("[profile] id"), "{e}");
}

#[test]
fn auto_space_is_what_the_df_needs() {
    let p = edited(|t| t.replacen("space = 512", "space = \"auto\"\nspare = 5", 1)).unwrap();
    // 11 header + 6 name + key file 11 + 96 + EF 11 + 4 x 33 = 267, and 5 spare.
    assert_eq!(p.df(&[MF, 0xDDF1, 0xDF01]).unwrap().space, Some(272));
}

#[test]
fn the_keys_named_for_reading_and_writing_must_open_them() {
    let p = Profile::wenzhou();
    let ssse = p.df(&[MF, 0xDDF1]).unwrap();
    let ef06 = ssse.ef(0x0006).unwrap();
    assert_eq!(ef06.read_key.as_deref(), Some("RKSSSE"));
    assert_eq!(ef06.write_key.as_deref(), Some("UKSSSE"));
    // The read key named in the profile is the one reading uses.
    let ReadAccess::After(k) = p.ef_read_access(ssse, ef06) else {
        panic!("EF06 without a read key")
    };
    assert_eq!(k.id, 0x0A);
    // The read key cannot write (state 1 does not meet 22).
    let e = problems(edited(|t| {
        t.replacen("write_key = \"UKSSSE\"", "write_key = \"RKSSSE\"", 1)
    }));
    assert!(
        e.contains("ef 0005: write_key RKSSSE: its follow-on state does not meet right 22"),
        "{e}"
    );
    // A key of another DF.
    let e = problems(edited(|t| {
        t.replacen("read_key = \"RKSSSE\"", "read_key = \"PURSE_MK\"", 1)
    }));
    assert!(
        e.contains("read_key PURSE_MK: PURSE_MK is no external-authentication key of df 3F00/DDF1"),
        "{e}"
    );
    // A MAC-protected EF is written under its line-protection key.
    let e = problems(edited(|t| {
        t.replacen("write_key = \"DAMK\"", "write_key = \"DTK\"", 1)
    }));
    assert!(
        e.contains("write_key DTK: writes need a MAC under line-protection key 00"),
        "{e}"
    );
    // MF authority (0A) is named by the MF's key, also for an EF of a DF.
    assert_eq!(ssse.ef(0x001D).unwrap().write_key.as_deref(), Some("MF_MK"));
    // A right met by everyone needs no key.
    let e = problems(edited(|t| {
        t.replacen(
            "write = \"0A\"\nwrite_key = \"MF_MK\"",
            "write = \"F0\"\nwrite_key = \"MF_MK\"",
            1,
        )
    }));
    assert!(
        e.contains("the write right F0 is met without any key"),
        "{e}"
    );
}
