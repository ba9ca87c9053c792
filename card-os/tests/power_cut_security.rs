//! Power cuts during every state-changing security command: WRITE KEY (add, update, encrypted
//! update), VERIFY (wrong and right PIN), CHANGE PIN, RELOAD PIN, PIN UNBLOCK, EXTERNAL
//! AUTHENTICATE, a line-protected write, APPLICATION BLOCK, APPLICATION UNBLOCK (right and wrong
//! MAC after 0, 1 and 2 failed attempts: each attempt is counted first, FMCOS 2.0 §8.2) and CARD
//! BLOCK. Cut at every page write and inside each, and during the recovery after; the card must show the state before
//! or after the command, or, for commands that commit a spent try first, that state with exactly
//! one try spent.
//!
//! The PIN invariant (checked at every cut point, through the sweep's `check` hook over an
//! `observe` that reads the error counters): no cut ever leaves a counter with more tries than
//! before the command, unless the command was correct and the card shows its complete result.
//! Each sweep prints its counts; none may be zero.

mod common;

use card_os::crypto::{
    challenge_cryptogram, line_encrypt, BlockCipher, Key, Mac, MacIv, Padding, Rng,
};
use card_os::fs;
use card_os::security::keys::{self, KeyType};
use card_os::sim::inspect;
use card_os::sim::tear::{sweep, Sweep, SweepReport};
use card_os::sim::{MemoryNvm, SimCard, SimRng};

const MF_LINE: [u8; 8] = [0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17];
const DF_MASTER: [u8; 8] = [0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27];
const DF_LINE: [u8; 8] = [0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37];
const UNBLOCK: [u8; 8] = [0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47];
const RELOAD: [u8; 8] = [0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57];

fn h(bytes: &[u8]) -> String {
    hex::encode_upper(bytes)
}

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

/// MF with a key file and line-protection key; DF 1001 with master key, line-protection key, PIN
/// (3 tries), unblock and reload keys, an encrypt key whose updates must be encrypted (type 70),
/// and a MAC-protected binary EF0015.
fn base_image() -> MemoryNvm {
    image_with_pin("3A F0 EF 01 33 123456FFFFFFFFFF")
}

/// The base image with this PIN record (WRITE KEY data after its Lc).
fn image_with_pin(pin_record: &str) -> MemoryNvm {
    let pin_lc = hex(pin_record).len();
    let setup = format!(
        "80E0000007 3F 0040 01 F0 FF FF => 9000
         80D401000D 36 F0 F0 FF 33 {mf_line} => 9000
         80E0100113 38 0300 F0 F0 95 FFFF 434954495A454E2E415050 => 9000
         80E0000007 3F 0080 95 F0 FF FF => 9000
         80D401000D 39 F0 F0 0A 33 {master} => 9000
         80D401000D 36 F0 F0 FF 33 {line} => 9000
         80D40100{pin_lc:02X} {pin_record} => 9000
         80D401000D 37 F0 F0 FF 33 {unblock} => 9000
         80D401000D 38 F0 F0 FF 33 {reload} => 9000
         80D401010D 70 F0 F0 01 01 6061626364656667 => 9000
         80E0001507 A8 0020 F0 F0 FF FF => 9000",
        mf_line = h(&MF_LINE),
        master = h(&DF_MASTER),
        line = h(&DF_LINE),
        unblock = h(&UNBLOCK),
        reload = h(&RELOAD),
    );
    let mut card = common::factory_card();
    common::run(&mut card, &setup);
    card.into_nvm()
}

/// The challenge a freshly powered simulated card gives first (the default seed): what the GET
/// CHALLENGE at the end of a sweep's setup returns in every run of the sweep.
fn first_challenge() -> [u8; 4] {
    nth_challenge(0)
}

/// The `n`th 4-byte challenge (0-based) of a freshly powered simulated card.
fn nth_challenge(n: usize) -> [u8; 4] {
    let mut stream = vec![0u8; 4 * (n + 1)];
    SimRng::default_seeded().fill(&mut stream);
    stream[4 * n..].try_into().unwrap()
}

/// `header ‖ Lc ‖ body ‖ MAC` with FMCOS line protection under `key` and the first challenge;
/// `encrypt` puts `LD ‖ data ‖ 80 00…` under the key first.
fn protect(header: &str, data: &[u8], key: &Key, encrypt: bool) -> String {
    let body = if encrypt {
        let mut out = [0u8; 64];
        let n = line_encrypt(key, data, Padding::WhenUnaligned, &mut out).unwrap();
        out[..n].to_vec()
    } else {
        data.to_vec()
    };
    let mut head = hex(header);
    head.push((body.len() + 4) as u8);
    let mac = Mac::compute(
        key,
        MacIv::Bytes(&first_challenge()),
        &[head.as_slice(), body.as_slice()],
    )
    .unwrap();
    format!("{} {} {}", h(&head), h(&body), h(&mac))
}

/// The error counters of DF 1001's PIN, unblock, reload and master keys, read from its key file.
fn counters(card: &mut SimCard) -> Result<Vec<u8>, String> {
    let card = card.card().ok_or("card did not power up")?;
    let storage = card.storage();
    let sw = |sw| format!("{sw}");
    let mf = fs::file_at(storage, fs::mf_addr(storage)).map_err(sw)?;
    let df = fs::find_child(storage, &mf, 0x1001)
        .map_err(sw)?
        .ok_or("no DF 1001")?;
    let key_file = fs::find_key_file(storage, &df)
        .map_err(sw)?
        .ok_or("no key file")?;
    let mut out = Vec::new();
    for key_type in [
        KeyType::Pin,
        KeyType::PinUnblock,
        KeyType::PinReload,
        KeyType::ExternalAuth,
    ] {
        let entry = keys::find(storage, &key_file, key_type, 0)
            .map_err(sw)?
            .ok_or("key missing")?;
        out.push(entry.counter().ok_or("no counter")?.0);
    }
    Ok(out)
}

/// Counters first, then the canonical dump of everything the card holds.
fn observe(card: &mut SimCard) -> Result<Vec<u8>, String> {
    let mut seen = counters(card)?;
    let card = card.card().ok_or("card did not power up")?;
    seen.extend(inspect::dump(card).map_err(|sw| format!("dump failed: {sw}"))?);
    Ok(seen)
}

const COUNTERS: usize = 4;

/// No extra try: a counter above its value before the command is only allowed in the complete
/// result of a correct command. A state in between is the state before with one try spent: one
/// counter one lower, and the dump differing from before in that counter's byte only.
fn no_extra_try(correct: bool) -> impl FnMut(&[u8], &[u8], &[u8]) -> Result<(), String> {
    move |before, after, seen| {
        for i in 0..COUNTERS {
            let (had, has) = (before[i] & 0x0F, seen[i] & 0x0F);
            if has > had && !(correct && seen == after) {
                return Err(format!(
                    "counter {i}: {had} tries before the command, {has} after a cut"
                ));
            }
        }
        if seen == before || seen == after {
            return Ok(());
        }
        let spent: Vec<usize> = (0..COUNTERS).filter(|&i| seen[i] != before[i]).collect();
        let one_spent =
            matches!(spent.as_slice(), [i] if (seen[*i] & 0x0F) + 1 == before[*i] & 0x0F);
        let dump_diff = seen[COUNTERS..]
            .iter()
            .zip(&before[COUNTERS..])
            .filter(|(a, b)| a != b)
            .count();
        if one_spent && seen.len() == before.len() && dump_diff == 1 {
            Ok(())
        } else {
            Err(format!(
                "neither before, after, nor one try spent (counters {:02X?} -> {:02X?}, {dump_diff} bytes differ)",
                &before[..COUNTERS],
                &seen[..COUNTERS]
            ))
        }
    }
}

struct Case<'a> {
    name: &'a str,
    setup: Vec<String>,
    command: String,
    /// The status word the command answers without a cut.
    sw: &'a str,
    /// The command is correct (right PIN, right MAC): its result may give tries back.
    correct: bool,
    /// The command commits a spent try before its result.
    two_steps: bool,
}

fn run(image: &MemoryNvm, case: Case<'_>) -> SweepReport {
    let setup: Vec<Vec<u8>> = case.setup.iter().map(|s| hex(s)).collect();
    let setup: Vec<&[u8]> = setup.iter().map(|v| v.as_slice()).collect();
    let command = hex(&case.command);
    let report = sweep(
        &Sweep {
            image,
            setup: &setup,
            command: &command,
            cut_recovery: true,
            intermediate: case.two_steps,
        },
        observe,
        no_extra_try(case.correct),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    assert_eq!(
        h(&report.response[report.response.len() - 2..]),
        case.sw,
        "{}",
        case.name
    );
    assert!(
        report.cut_points > 0 && report.writes > 0 && report.recovery_cut_points > 0,
        "{}: nothing was cut",
        case.name
    );
    assert!(
        report.saw_before > 0 && report.saw_after > 0,
        "{}: {report:?}",
        case.name
    );
    if case.two_steps {
        assert!(report.saw_intermediate > 0, "{}: {report:?}", case.name);
    }
    println!(
        "power cut: {:<44} {:>3} page writes, {:>4} cut points, {:>5} recovery cut points \
         (before {}, after {}, one try spent {})",
        case.name,
        report.writes,
        report.cut_points,
        report.recovery_cut_points,
        report.saw_before,
        report.saw_after,
        report.saw_intermediate
    );
    report
}

fn in_df(extra: &[&str]) -> Vec<String> {
    let mut setup = vec!["00A4000C02 1001".to_string()];
    setup.extend(extra.iter().map(|s| s.to_string()));
    setup
}

const GET_CHALLENGE: &str = "0084000004";

#[test]
fn write_key() {
    let image = base_image();
    run(
        &image,
        Case {
            name: "WRITE KEY add (plain)",
            setup: in_df(&[]),
            command: "80D401020D 34 F0 F0 01 01 0011223344556677".into(),
            sw: "9000",
            correct: true,
            two_steps: false,
        },
    );
    run(
        &image,
        Case {
            name: "WRITE KEY update (plain)",
            setup: in_df(&[]),
            command: format!("80D43600 0D 36 F0 F0 FF 33 {}", h(&[0x99; 8])),
            sw: "9000",
            correct: true,
            two_steps: false,
        },
    );
    let record = hex("70 F0 F0 02 01 7071727374757677");
    run(
        &image,
        Case {
            name: "WRITE KEY update (encrypted + MAC)",
            setup: in_df(&[GET_CHALLENGE]),
            command: protect("84D43001", &record, &Key::Des(DF_MASTER), true),
            sw: "9000",
            correct: true,
            two_steps: false,
        },
    );
}

#[test]
fn verify() {
    let image = base_image();
    run(
        &image,
        Case {
            name: "VERIFY wrong PIN",
            setup: in_df(&[]),
            command: "0020000003 654321".into(),
            sw: "63C2",
            correct: false,
            two_steps: false,
        },
    );
    run(
        &image,
        Case {
            name: "VERIFY wrong PIN, last try",
            setup: in_df(&["0020000003 000000", "0020000003 000000"]),
            command: "0020000003 654321".into(),
            sw: "63C0",
            correct: false,
            two_steps: false,
        },
    );
    run(
        &image,
        Case {
            name: "VERIFY right PIN (after a wrong one)",
            setup: in_df(&["0020000003 000000"]),
            command: "0020000003 123456".into(),
            sw: "9000",
            correct: true,
            two_steps: true,
        },
    );
}

#[test]
fn change_pin() {
    let image = base_image();
    run(
        &image,
        Case {
            name: "CHANGE PIN right old PIN",
            setup: in_df(&[]),
            command: "805E010007 123456 FF 654321".into(),
            sw: "9000",
            correct: true,
            two_steps: true,
        },
    );
    run(
        &image,
        Case {
            name: "CHANGE PIN wrong old PIN",
            setup: in_df(&[]),
            command: "805E010007 111111 FF 654321".into(),
            sw: "63C2",
            correct: false,
            two_steps: false,
        },
    );
}

#[test]
fn change_pin_to_a_longer_pin() {
    // A 2-byte PIN followed by the unblock, reload and an encryption key: a CHANGE PIN to 8 bytes
    // grows its record and moves those keys (FMCOS 2.0 §8.6.1), all in one transaction.
    let image = image_with_pin("3A F0 EF 01 33 1234");
    run(
        &image,
        Case {
            name: "CHANGE PIN to a longer PIN (keys after it move)",
            setup: in_df(&[]),
            command: "805E01000B 1234 FF 1122334455667788".into(),
            sw: "9000",
            correct: true,
            two_steps: true,
        },
    );
    // The moved keys are intact: the reload key's MAC still verifies.
    let mut card = SimCard::from_nvm(image.snapshot()).ok().unwrap();
    let pin = hex("112233");
    let mac = Mac::compute(&Key::Des(RELOAD), MacIv::Zero, &[&pin]).unwrap();
    common::run(
        &mut card,
        &format!(
            "00A4000C02 1001 => 9000
             805E01000B 1234 FF 1122334455667788 => 9000
             0020000008 1122334455667788 => 9000
             805E000007 112233 {} => 9000
             0020000003 112233 => 9000
             0020000002 1234 => 63C2",
            h(&mac)
        ),
    );
}

#[test]
fn reload_pin() {
    let image = base_image();
    let pin = hex("112233");
    let mac = Mac::compute(&Key::Des(RELOAD), MacIv::Zero, &[&pin]).unwrap();
    run(
        &image,
        Case {
            name: "RELOAD PIN right MAC (PIN blocked)",
            setup: in_df(&["0020000001 00", "0020000001 00", "0020000001 00"]),
            command: format!("805E000007 112233 {}", h(&mac)),
            sw: "9000",
            correct: true,
            two_steps: true,
        },
    );
    run(
        &image,
        Case {
            name: "RELOAD PIN wrong MAC",
            setup: in_df(&["0020000001 00"]),
            command: "805E000007 112233 00000000".into(),
            sw: "9302",
            correct: false,
            two_steps: false,
        },
    );
}

#[test]
fn pin_unblock() {
    let image = base_image();
    let blocked = [
        "0020000001 00",
        "0020000001 00",
        "0020000001 00",
        GET_CHALLENGE,
    ];
    run(
        &image,
        Case {
            name: "PIN UNBLOCK MAC only",
            setup: in_df(&blocked),
            command: protect("84240000", &[], &Key::Des(UNBLOCK), false),
            sw: "9000",
            correct: true,
            two_steps: true,
        },
    );
    run(
        &image,
        Case {
            name: "PIN UNBLOCK with encrypted new PIN",
            setup: in_df(&blocked),
            command: protect("84240001", &hex("246810"), &Key::Des(UNBLOCK), true),
            sw: "9000",
            correct: true,
            two_steps: true,
        },
    );
    run(
        &image,
        Case {
            name: "PIN UNBLOCK wrong MAC",
            setup: in_df(&blocked),
            command: protect("84240000", &[], &Key::Des(DF_LINE), false),
            sw: "63C2",
            correct: false,
            two_steps: false,
        },
    );
}

#[test]
fn external_authenticate() {
    let image = base_image();
    // The setup's wrong try uses the first challenge; the command answers the second.
    let cryptogram = challenge_cryptogram(&Key::Des(DF_MASTER), &nth_challenge(1)).unwrap();
    run(
        &image,
        Case {
            name: "EXTERNAL AUTHENTICATE right",
            setup: in_df(&["0084000004", "0082000008 0000000000000000", GET_CHALLENGE]),
            command: format!("0082000008 {}", h(cryptogram.as_slice())),
            sw: "9000",
            correct: true,
            two_steps: true,
        },
    );
    run(
        &image,
        Case {
            name: "EXTERNAL AUTHENTICATE wrong",
            setup: in_df(&[GET_CHALLENGE]),
            command: "0082000008 0000000000000000".into(),
            sw: "63C2",
            correct: false,
            two_steps: false,
        },
    );
}

#[test]
fn protected_write() {
    let image = base_image();
    run(
        &image,
        Case {
            name: "UPDATE BINARY with line-protection MAC",
            setup: in_df(&[GET_CHALLENGE]),
            command: protect("04D69500", &[0x5A; 24], &Key::Des(DF_LINE), false),
            sw: "9000",
            correct: true,
            two_steps: false,
        },
    );
}

#[test]
fn life_cycle() {
    let image = base_image();
    let line = Key::Des(DF_LINE);
    run(
        &image,
        Case {
            name: "APPLICATION BLOCK temporary",
            setup: in_df(&[GET_CHALLENGE]),
            command: protect("841E0000", &[], &line, false),
            sw: "9000",
            correct: true,
            two_steps: false,
        },
    );
    run(
        &image,
        Case {
            name: "APPLICATION BLOCK permanent",
            setup: in_df(&[GET_CHALLENGE]),
            command: protect("841E0001", &[], &line, false),
            sw: "9000",
            correct: true,
            two_steps: false,
        },
    );
    // APPLICATION UNBLOCK counts its attempt first: see application_unblock_attempts_are_counted_before_the_mac.
    run(
        &image,
        Case {
            name: "CARD BLOCK",
            setup: vec![GET_CHALLENGE.into()],
            command: protect("84160000", &[], &Key::Des(MF_LINE), false),
            sw: "9000",
            correct: true,
            two_steps: false,
        },
    );
}

/// The DF-1001 image with the application blocked temporarily and `failed` wrong APPLICATION
/// UNBLOCKs already counted.
fn blocked_image(failed: usize) -> MemoryNvm {
    let line = Key::Des(DF_LINE);
    let mut card = SimCard::from_nvm(base_image().snapshot()).ok().unwrap();
    common::run(
        &mut card,
        &format!(
            "00A4000C02 1001 => 9000
             {GET_CHALLENGE} => xxxxxxxx 9000
             {} => 9000",
            protect("841E0000", &[], &line, false)
        ),
    );
    for _ in 0..failed {
        common::run(
            &mut card,
            "0084000004 => xxxxxxxx 9000
             8418000004 00000000 => 6988",
        );
    }
    card.into_nvm()
}

/// The persistent state after `command` runs on `image` (after `setup`), without a cut.
fn state_after(image: &MemoryNvm, setup: &[String], command: &str) -> Vec<u8> {
    let mut card = SimCard::from_nvm(image.snapshot()).ok().unwrap();
    for apdu in setup {
        card.transmit(&hex(apdu));
    }
    card.transmit(&hex(command));
    let mut card = SimCard::from_nvm(card.into_nvm()).ok().unwrap();
    observe(&mut card).unwrap()
}

/// An APPLICATION UNBLOCK sweep: every cut shows the state before, after, or (`counted`) the
/// state after a failed attempt, which the attempt commits before its MAC is compared.
fn unblock_sweep(
    name: &str,
    image: &MemoryNvm,
    command: &str,
    sw: &str,
    counted: Option<&[u8]>,
) -> SweepReport {
    let setup = ["00A4000C02 1001".to_string(), GET_CHALLENGE.to_string()];
    let setup_bytes: Vec<Vec<u8>> = setup.iter().map(|s| hex(s)).collect();
    let setup_refs: Vec<&[u8]> = setup_bytes.iter().map(|v| v.as_slice()).collect();
    let report = sweep(
        &Sweep {
            image,
            setup: &setup_refs,
            command: &hex(command),
            cut_recovery: true,
            intermediate: counted.is_some(),
        },
        observe,
        |before, after, seen| {
            if seen == before || seen == after || counted == Some(seen) {
                Ok(())
            } else {
                Err("neither before, after, nor the attempt counted".into())
            }
        },
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        h(&report.response[report.response.len() - 2..]),
        sw,
        "{name}"
    );
    assert!(
        report.cut_points > 0 && report.saw_before > 0 && report.saw_after > 0,
        "{name}: {report:?}"
    );
    if counted.is_some() {
        assert!(report.saw_intermediate > 0, "{name}: {report:?}");
    }
    println!(
        "power cut: {name:<44} {:>3} page writes, {:>4} cut points, {:>5} recovery cut points \
         (before {}, after {}, attempt counted {})",
        report.writes,
        report.cut_points,
        report.recovery_cut_points,
        report.saw_before,
        report.saw_after,
        report.saw_intermediate
    );
    report
}

#[test]
fn application_unblock_attempts_are_counted_before_the_mac() {
    let line = Key::Des(DF_LINE);
    let setup = ["00A4000C02 1001".to_string(), GET_CHALLENGE.to_string()];
    let wrong = "8418000004 00000000";
    let right = protect("84180000", &[], &line, false);
    for failed in 0..3 {
        let image = blocked_image(failed);
        let counted = state_after(&image, &setup, wrong);
        unblock_sweep(
            &format!("APPLICATION UNBLOCK wrong MAC ({failed} failed before)"),
            &image,
            wrong,
            "6988",
            None,
        );
        if failed < 2 {
            unblock_sweep(
                &format!("APPLICATION UNBLOCK right MAC ({failed} failed before)"),
                &image,
                &right,
                "9000",
                Some(&counted),
            );
        }
    }
    // After three failures the block is permanent: even the right MAC is refused.
    let mut card = SimCard::from_nvm(blocked_image(3)).ok().unwrap();
    common::run(
        &mut card,
        &format!(
            "00A4000C02 1001 => 9303
             {GET_CHALLENGE} => xxxxxxxx 9000
             {right} => 9303"
        ),
    );
}

#[test]
fn protected_read_writes_nothing() {
    // A line-protected read (FMCOS 2.0 §7.5) changes no persistent state: nothing to cut.
    let image = base_image();
    let setup = [hex("00A4000C02 1001"), hex(GET_CHALLENGE)];
    let setup: Vec<&[u8]> = setup.iter().map(|v| v.as_slice()).collect();
    let command = hex(&format!(
        "{} 08",
        protect("04B09500", &[], &Key::Des(DF_LINE), false)
    ));
    let report = sweep(
        &Sweep {
            image: &image,
            setup: &setup,
            command: &command,
            cut_recovery: true,
            intermediate: false,
        },
        observe,
        |_, _, _| Ok(()),
    )
    .unwrap();
    assert_eq!(report.writes, 0);
    assert_eq!(report.response.len(), 8 + 4 + 2);
    assert!(report.response.ends_with(&[0x90, 0x00]));
    println!("power cut: READ BINARY line-protected: 0 page writes, nothing to cut");
}

#[test]
fn stk_protected_write() {
    // LD/T 32 maintenance keys (byte 4 = 01): the same all-or-nothing under session-key MACs.
    use card_os::crypto::session_key;
    const STK: [u8; 8] = [0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67];
    let mut card = SimCard::from_nvm(base_image()).ok().unwrap();
    common::run(
        &mut card,
        &format!(
            "00A4000C02 1001 => 9000
             80D401030D 36 F0 F0 01 33 {} => 9000
             80E0000907 A8 0010 F0 F0 FF FC => 9000",
            h(&STK)
        ),
    );
    let image = card.into_nvm();
    let stk_protect = |header: &str, data: &[u8]| {
        let sk = session_key(&Key::Des(STK), &first_challenge()).unwrap();
        let mut head = hex(header);
        head.push((data.len() + 4) as u8);
        let sk = BlockCipher::new(&sk);
        let mut mac = Mac::session(&sk).unwrap();
        mac.update(&head);
        mac.update(data);
        format!("{} {} {}", h(&head), h(data), h(&mac.finalize()))
    };
    run(
        &image,
        Case {
            name: "UPDATE BINARY with an LD/T 32 STK MAC",
            setup: in_df(&[GET_CHALLENGE]),
            command: stk_protect("04D68900", &[0x3C; 16]),
            sw: "9000",
            correct: true,
            two_steps: false,
        },
    );
}

/// A key file with a 2-byte PIN first and `keys` 3DES keys `30` after it (ids 01..), in the MF.
fn pin_then_keys(keys: u8) -> SimCard {
    let mut card = common::factory_card();
    let mut script = String::from(
        "80E0000007 3F 0200 01 F0 FF FF => 9000
         80D4010007 3A F0 EF 01 33 1234 => 9000\n",
    );
    for id in 1..=keys {
        script.push_str(&format!(
            "80D401{id:02X}15 30 F0 F0 01 00 {} => 9000\n",
            h(&[id; 16])
        ));
    }
    common::run(&mut card, &script);
    card
}

#[test]
fn a_longer_pin_moves_at_most_448_bytes_of_keys() {
    // 19 keys after the PIN (456 bytes): more than one transaction may move; refused before a
    // try is spent.
    let mut card = pin_then_keys(19);
    common::run(
        &mut card,
        "805E01000B 1234 FF 1122334455667788 => 6A84
         00200000 => 63C3
         0020000002 1234 => 9000",
    );
    // 18 keys (432 bytes): the PIN grows, every key moves intact.
    let mut card = pin_then_keys(18);
    common::run(
        &mut card,
        "805E01000B 1234 FF 1122334455667788 => 9000
         0020000008 1122334455667788 => 9000",
    );
    let sim = card.card().unwrap();
    let storage = sim.storage();
    let mf = fs::file_at(storage, fs::mf_addr(storage)).unwrap();
    let key_file = fs::find_key_file(storage, &mf).unwrap().unwrap();
    for id in 1..=18u8 {
        let entry = keys::find(storage, &key_file, KeyType::DesEncrypt, id)
            .unwrap()
            .unwrap();
        assert_eq!(
            keys::load_key(storage, &entry).unwrap(),
            Key::TripleDes([id; 16]),
            "key {id}"
        );
    }
    assert_eq!(key_file.header.used(), 10 + 6 + 18 * 24);
}
