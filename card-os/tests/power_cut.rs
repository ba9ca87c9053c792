//! Power cuts during every state-changing file-system command: cut at every NVM page write and
//! inside each write (first byte, middle, last byte), and also during the recovery that follows;
//! after power-up the card must show the state before the command or the state after it.
//! Each sweep prints its cut-point counts; none may be zero.

mod common;

use card_os::sim::inspect;
use card_os::sim::tear::{sweep, Sweep, SweepReport};
use card_os::sim::{MemoryNvm, SimCard};

/// A card with one file of each kind under the MF and a DF with a key file and files.
fn base_image() -> MemoryNvm {
    let setup = "
        80E0000107 28 0100 F0 F0 FF FF => 9000
        80E0000207 2A 04 10 F0 F0 FF FF => 9000
        80E0000507 2C 07 20 F0 F0 FF FF => 9000
        80E0001807 2E 03 17 F0 F0 FF FF => 9000
        00E2001010 00112233445566778899AABBCCDDEEFF => 9000
        00E2002806 0104 41424344 => 9000
        00E200C017 A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1 => 9000
        00E200C017 A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2 => 9000
        80E0100114 38 0400 F0 F0 95 FFFF 434954495A454E2E54455354 => 9000
        80E0000007 3F 0040 95 F0 FF FF => 9000
        80E0001507 28 001E F0 F0 FF FF => 9000
        80E0001607 2A 02 08 F0 F0 FF FF => 9000
        00D6950003 313233 => 9000
        00A4000C02 3F00 => 9000
    ";
    let mut card = common::factory_card();
    common::run(&mut card, setup);
    card.into_nvm()
}

fn dump(card: &mut SimCard) -> Result<Vec<u8>, String> {
    let card = card.card().ok_or("card did not power up")?;
    inspect::dump(card).map_err(|sw| format!("dump failed: {sw}"))
}

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

fn run(name: &str, image: &MemoryNvm, setup: &[&str], command: &str) -> SweepReport {
    let setup: Vec<Vec<u8>> = setup.iter().map(|s| hex(s)).collect();
    let setup: Vec<&[u8]> = setup.iter().map(|v| v.as_slice()).collect();
    let command = hex(command);
    let report = sweep(
        &Sweep {
            image,
            setup: &setup,
            command: &command,
            cut_recovery: true,
            intermediate: false,
        },
        dump,
        |_, _, _| Ok(()),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        &report.response[report.response.len() - 2..],
        &[0x90, 0x00],
        "{name}"
    );
    assert!(
        report.cut_points > 0 && report.writes > 0,
        "{name}: nothing was cut"
    );
    assert!(
        report.saw_before > 0 && report.saw_after > 0,
        "{name}: {report:?}"
    );
    println!(
        "power cut: {name:<36} {:>3} page writes, {:>4} cut points, {:>4} recovery cut points \
         (before {}, after {})",
        report.writes,
        report.cut_points,
        report.recovery_cut_points,
        report.saw_before,
        report.saw_after
    );
    report
}

#[test]
fn create_file_of_each_type() {
    let image = base_image();
    let at_mf: &[&str] = &[];
    run(
        "CREATE FILE binary (28)",
        &image,
        at_mf,
        "80E0000907 28 0040 F0 F0 FF FF",
    );
    run(
        "CREATE FILE fixed record (2A)",
        &image,
        at_mf,
        "80E0000907 2A 05 10 F0 F0 FF FF",
    );
    run(
        "CREATE FILE variable record (2C)",
        &image,
        at_mf,
        "80E0000907 2C 05 10 F0 F0 FF FF",
    );
    // FMCOS 2.0 §7.13: a variable-record file by its space (`2C 00 18`).
    run(
        "CREATE FILE variable record by space (2C 00 18)",
        &image,
        at_mf,
        "80E0000C07 2C 0018 F0 F0 FF FF",
    );
    run(
        "CREATE FILE cyclic (2E)",
        &image,
        at_mf,
        "80E0000907 2E 0A 17 F0 EF FF FF",
    );
    run(
        "CREATE FILE purse (2F)",
        &image,
        at_mf,
        "80E0000A07 2F 0208 F0 00 FF 18",
    );
    run(
        "CREATE FILE MAC-protected binary (A8)",
        &image,
        at_mf,
        "80E0000B07 A8 0020 F0 F0 FF FF",
    );
    run(
        "CREATE FILE DF (38)",
        &image,
        at_mf,
        "80E0200113 38 0200 F0 F0 95 FFFF 5445535444462E32303031",
    );
    // A key file goes into a DF that has no files yet.
    let mut card = SimCard::from_nvm(image.snapshot()).ok().unwrap();
    common::run(
        &mut card,
        "80E0200210 38 0100 F0 F0 FF FFFF 454D5054592E4446 => 9000",
    );
    let empty_df = card.into_nvm();
    run(
        "CREATE FILE key file (3F)",
        &empty_df,
        &["00A40400 08 454D5054592E4446"],
        "80E0000007 3F 0040 95 F0 FF FF",
    );
}

/// A file created in memory that held erased files: its body is cleared before the command commits,
/// and a cut during the clearing must not show.
#[test]
fn create_file_over_erased_files() {
    let image = base_image();
    run(
        "CREATE FILE key file over erased files",
        &image,
        &["00A4000C02 1001", "800E000000"],
        "80E0000007 3F 0080 95 F0 FF FF",
    );
    let mut card = SimCard::from_nvm(image.snapshot()).ok().unwrap();
    common::run(
        &mut card,
        "00A4000C02 1001 => 9000
         800E000000 => 9000
         80E0000007 3F 0008 95 F0 FF FF => 9000",
    );
    let erased = card.into_nvm();
    run(
        "CREATE FILE record over erased files",
        &erased,
        &["00A4000C02 1001"],
        "80E0000107 2A 04 20 F0 F0 FF FF",
    );
}

#[test]
fn erase_df() {
    let image = base_image();
    run("ERASE DF", &image, &["00A4000C02 1001"], "800E000000");
}

#[test]
fn update_binary() {
    let image = base_image();
    let data16 = "00112233445566778899AABBCCDDEEFF";
    run(
        "UPDATE BINARY 16 bytes",
        &image,
        &[],
        &format!("00D681 00 10 {data16}"),
    );
    // 200 bytes across page boundaries.
    let data200 = "5A".repeat(200);
    run(
        "UPDATE BINARY 200 bytes",
        &image,
        &[],
        &format!("00D681 30 C8 {data200}"),
    );
}

#[test]
fn update_record() {
    let image = base_image();
    run(
        "UPDATE RECORD fixed",
        &image,
        &[],
        "00DC011410 FFEEDDCCBBAA99887766554433221100",
    );
    run(
        "UPDATE RECORD variable",
        &image,
        &[],
        "00DC012C06 0104 51525354",
    );
    run(
        "UPDATE RECORD (append) fixed",
        &image,
        &[],
        "00DC021410 0102030405060708090A0B0C0D0E0F10",
    );
    // FMCOS 2.0 §7.8 example 4: P1 00 with "next" after record 1 adds record 2 of a variable file.
    run(
        "UPDATE RECORD P1 00 next (FMCOS append) variable",
        &image,
        &["00B2012C00"],
        "00DC002A06 0204 51525354",
    );
    // FMCOS 2.0 §7.8 example 5: "next" on a cyclic file appends (here onto a full file).
    let mut card = SimCard::from_nvm(image.snapshot()).ok().unwrap();
    common::run(
        &mut card,
        &format!("00E200C017 {} => 9000", "B2".repeat(23)),
    );
    run(
        "UPDATE RECORD next (FMCOS append) cyclic, full",
        &card.into_nvm(),
        &[],
        &format!("00DC01C217 {}", "B3".repeat(23)),
    );
}

#[test]
fn append_record_on_cyclic() {
    let image = base_image();
    let record = "B1".repeat(23);
    run(
        "APPEND RECORD cyclic (not full)",
        &image,
        &[],
        &format!("00E200C017 {record}"),
    );
    let mut card = SimCard::from_nvm(image.snapshot()).ok().unwrap();
    common::run(
        &mut card,
        &format!("00E200C017 {} => 9000", "B2".repeat(23)),
    );
    let full = card.into_nvm();
    run(
        "APPEND RECORD cyclic (full, overwrites)",
        &full,
        &[],
        &format!("00E200C017 {record}"),
    );
    run(
        "APPEND RECORD variable",
        &image,
        &[],
        "00E2002806 0204 61626364",
    );
    // FMCOS 2.0 §7.9 table 7.6: P2 = SFI ‖ 100.
    run(
        "APPEND RECORD variable, FMCOS P2",
        &image,
        &[],
        "00E2002C06 0204 61626364",
    );
}
