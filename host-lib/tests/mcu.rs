//! The card OS on an emulated Cortex-M0 (card-os/firmware in QEMU's `microbit` machine), driven
//! over its UART: the same transcripts as the simulator's (FMCOS files, the public security and
//! purse vectors), and a full personalization with the default profile, read back.
//!
//! Run by `scripts/test.sh`, which builds the firmware and sets `CITIZENCARD_MCU=1`; without the
//! variable every test here prints a note and passes without doing anything.

use std::path::PathBuf;
use std::sync::Arc;

use card_os::card::HistoricalBytes;
use card_os::nvm::Geometry;
use card_os::sim::SimCard;
use host_lib::holder::{input, Validator};
use host_lib::keys::KeySet;
use host_lib::mcu::{McuCard, McuConfig, CHIP_NVM_MAX, CHIP_PAGE_SIZE};
use host_lib::personalize::register::{issue_pending, reserve};
use host_lib::personalize::Found;
use host_lib::profile::Profile;
use host_lib::registry::{CardStatus, ManualClock, Registry, RegistryConfig};
use host_lib::script::{self, RunOptions, Script};
use host_lib::ssse::{read_card, ReadMode, ReadOptions};
use host_lib::testing::{mcu_context, Firmware};
use host_lib::transport::sim::SimTransport;
use host_lib::transport::Transport;

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors")
}

/// The chip's geometry: 24 KiB in 64-byte pages.
const CHIP: Geometry = Geometry {
    capacity: CHIP_NVM_MAX,
    page_size: CHIP_PAGE_SIZE,
};

/// A factory card on the chip, powered.
fn factory_chip(config: &McuConfig, serial: u32) -> McuCard {
    let blank = SimCard::blank(CHIP, &HistoricalBytes::wenzhou(serial.to_be_bytes())).unwrap();
    let mut chip = McuCard::start(config, blank.nvm().bytes()).unwrap();
    let atr = chip.power_on_atr().unwrap();
    assert_eq!(atr, blank.atr(), "the chip's ATR is the image's");
    chip
}

/// Runs a transcript on a factory card on the chip and on the simulator: every expectation met on
/// both, the same answers from both.
fn transcript(config: &McuConfig, name: &str) -> usize {
    let text = std::fs::read_to_string(vectors().join("transcripts").join(name)).unwrap();
    let script = Script::parse(&text).unwrap();
    let mut chip = factory_chip(config, 0x0102_0304);
    let mut sim = SimTransport::blank(CHIP, &HistoricalBytes::wenzhou([1, 2, 3, 4])).unwrap();
    let mut on_chip = Vec::new();
    let summary = script::run(&mut chip, &script, RunOptions::default(), |o| {
        on_chip.push(o.to_text())
    })
    .unwrap_or_else(|e| panic!("{name} on the chip: {e}\n{}", on_chip.join("\n")));
    assert!(summary.ok(), "{name} on the chip:\n{}", on_chip.join("\n"));
    let mut on_sim = Vec::new();
    script::run(&mut sim, &script, RunOptions::default(), |o| {
        on_sim.push(o.to_text())
    })
    .unwrap();
    let strip = |lines: &[String]| -> Vec<String> {
        // Times differ; the exchanges must not.
        lines
            .iter()
            .map(|l| l.split(" (").next().unwrap_or(l).to_string())
            .collect()
    };
    assert_eq!(
        strip(&on_chip),
        strip(&on_sim),
        "{name}: chip and simulator differ"
    );
    summary.steps
}

#[test]
fn fmcos_files_transcript_on_the_chip() {
    let Some(config) = mcu_context("fmcos_files_transcript_on_the_chip", Firmware::Production)
    else {
        return;
    };
    assert!(transcript(&config, "fmcos-files.apdu") > 50);
}

#[test]
fn security_and_purse_vectors_on_the_chip() {
    let Some(config) = mcu_context(
        "security_and_purse_vectors_on_the_chip",
        Firmware::TestHooks,
    ) else {
        return;
    };
    assert!(transcript(&config, "fmcos-security-vectors.apdu") > 20);
    assert!(transcript(&config, "purse-tv4-tv5.apdu") > 40);
    assert!(transcript(&config, "purse-sm4.apdu") > 40);
}

#[test]
fn the_production_firmware_refuses_fixed_random_bytes() {
    let Some(config) = mcu_context(
        "the_production_firmware_refuses_fixed_random_bytes",
        Firmware::Production,
    ) else {
        return;
    };
    let mut chip = factory_chip(&config, 7);
    assert!(chip.fix_random(&[1, 2, 3, 4]).is_err());
    // Two challenges from the chip's RNG differ.
    let a = chip.transmit(&[0x00, 0x84, 0x00, 0x00, 0x08]).unwrap();
    let b = chip.transmit(&[0x00, 0x84, 0x00, 0x00, 0x08]).unwrap();
    assert_eq!(a.len(), 10);
    assert_ne!(a, b);
}

#[test]
fn the_image_survives_a_restart_of_the_chip() {
    let Some(config) = mcu_context(
        "the_image_survives_a_restart_of_the_chip",
        Firmware::Production,
    ) else {
        return;
    };
    let mut chip = factory_chip(&config, 9);
    // A binary file under the MF, written, then the chip's memory read out and loaded again.
    for apdu in ["80E0000107280010F0F0FFFF", "00D6810004CAFEF00D"] {
        assert_eq!(
            chip.transmit(&hex::decode(apdu).unwrap()).unwrap(),
            [0x90, 0x00]
        );
    }
    let image = chip.image().unwrap();
    assert_eq!(image.len(), CHIP_NVM_MAX);
    drop(chip);
    let mut again = McuCard::start(&config, &image).unwrap();
    assert!(!again.power_on_atr().unwrap().is_empty());
    assert_eq!(
        again.transmit(&hex::decode("00B0810004").unwrap()).unwrap(),
        hex::decode("CAFEF00D9000").unwrap()
    );
    // An image the chip cannot hold is refused before the chip starts.
    assert!(McuCard::start(&config, &vec![0; CHIP_NVM_MAX + 64]).is_err());
}

#[test]
fn a_full_personalization_on_the_chip_reads_back() {
    let Some(config) = mcu_context(
        "a_full_personalization_on_the_chip_reads_back",
        Firmware::Production,
    ) else {
        return;
    };
    let keys = KeySet::load(&vectors().join("keys/dev.toml")).unwrap();
    let profile = Profile::wenzhou();
    let validator = Validator::new(time::macros::date!(2026 - 01 - 10));
    let clock = Arc::new(ManualClock::new(
        time::macros::datetime!(2026-01-10 02:00 UTC),
    ));
    let mut reg = Registry::open_in_memory(RegistryConfig::default(), clock).unwrap();
    // The applicant with a photo: every file of the default profile gets written.
    let applicant = input::load_csv(&vectors().join("applicants/sample.csv"), &validator)
        .unwrap()
        .into_iter()
        .filter_map(|row| row.result.ok())
        .find(|a| a.photo().is_some())
        .expect("a sample applicant with a photo");
    let reserved = reserve(&mut reg, "op-1", &applicant, &keys).unwrap();
    let mut chip = factory_chip(&config, 4242);
    let (report, issued) = issue_pending(
        &mut reg,
        "op-1",
        &mut chip,
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
    let read = read_card(
        &mut chip,
        &keys,
        &profile,
        ReadOptions {
            mode: ReadMode::ByTag,
            photo: true,
        },
    )
    .unwrap();
    assert_eq!(read.holder.id_number, *applicant.id_number());
    assert_eq!(read.holder.name, *applicant.name());
    assert_eq!(read.issuer.card_number, reserved.pending.card_number);
    assert_eq!(
        read.photo.map(|p| p.bytes().to_vec()),
        applicant.photo().map(|p| p.bytes().to_vec())
    );
    assert!(read.card_info.unwrap().issued);
}
