//! The in-place power cycle a chip uses (`Card::off`, `Card::power_cycle`, `Card::power_off`):
//! a card that is off answers nothing useful, a power cycle recovers the journal exactly as a
//! power-up by value does (also after a cut in the middle of a command's commit), and an image
//! that cannot power up leaves the card off.

mod common;

use card_os::apdu::RESPONSE_BUFFER_SIZE;
use card_os::card::{Card, PowerUpError};
use card_os::nvm::Geometry;
use card_os::sim::{inspect, MemoryNvm, PowerCut, SimRng};

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

fn send(card: &mut Card<MemoryNvm, SimRng>, apdu: &str) -> Vec<u8> {
    let mut out = [0u8; RESPONSE_BUFFER_SIZE];
    let n = card.process(&hex(apdu), &mut out);
    out[..n].to_vec()
}

/// A factory card with a 64-byte binary EF `0001` under the MF.
fn image() -> MemoryNvm {
    let mut card = common::factory_card();
    common::run(
        &mut card,
        "80E0000107 28 0040 F0 F0 FF FF => 9000
         00A4000C02 3F00 => 9000",
    );
    card.into_nvm()
}

fn snapshot(nvm: &MemoryNvm) -> MemoryNvm {
    MemoryNvm::from_bytes(nvm.bytes().to_vec(), Geometry::DEFAULT.page_size)
}

#[test]
fn a_card_that_is_off_answers_6f00_until_a_power_cycle() {
    let mut card = Card::off(image(), SimRng::default_seeded());
    assert_eq!(send(&mut card, "00A4000002 3F00"), hex("6F00"));
    card.power_cycle().unwrap();
    assert_eq!(send(&mut card, "00D6810003 414243"), hex("9000"));
    assert_eq!(send(&mut card, "00B0810003"), hex("414243 9000"));
    card.power_off();
    assert_eq!(send(&mut card, "00B0810003"), hex("6F00"));
    card.power_cycle().unwrap();
    // A power cycle is a power-up: the MF is current again, the written data stayed.
    assert_eq!(send(&mut card, "00B0810003"), hex("414243 9000"));
}

#[test]
fn an_image_that_cannot_power_up_leaves_the_card_off() {
    let blank = MemoryNvm::new(Geometry::DEFAULT.capacity, Geometry::DEFAULT.page_size);
    let mut card = Card::off(blank, SimRng::default_seeded());
    assert_eq!(card.power_cycle(), Err(PowerUpError::NotFormatted));
    assert_eq!(send(&mut card, "00A4000002 3F00"), hex("6F00"));
    // The NVM given back is the one it was built on, untouched.
    assert!(card.into_nvm().bytes().iter().all(|&b| b == 0));
}

#[test]
fn a_power_cycle_after_a_cut_commit_recovers_like_a_power_up() {
    // Cut the UPDATE BINARY at every page write of its commit; the card powered up in place and
    // a card powered up by value from the same torn image must agree, and show the write either
    // not done or done.
    let base = image();
    let before = {
        let card = Card::power_up(snapshot(&base), SimRng::default_seeded())
            .map_err(|(_, e)| e)
            .unwrap();
        inspect::dump(&card).unwrap()
    };
    let mut outcomes = [0usize; 2];
    for write in 0.. {
        let mut card = Card::power_up(snapshot(&base), SimRng::default_seeded())
            .map_err(|(_, e)| e)
            .unwrap();
        card.nvm_mut().arm_cut(PowerCut { write, bytes: 1 });
        let answer = send(&mut card, "00D6810004 31323334");
        if card.nvm_mut().is_powered() {
            // The command finished before the cut: every write point has been tried.
            assert_eq!(answer, hex("9000"));
            break;
        }
        card.nvm_mut().restore_power();
        card.nvm_mut().disarm_cut();
        let by_value = Card::power_up(snapshot(card.nvm_mut()), SimRng::default_seeded())
            .map_err(|(_, e)| e)
            .unwrap();
        card.power_cycle().unwrap();
        let in_place = inspect::dump(&card).unwrap();
        assert_eq!(
            in_place,
            inspect::dump(&by_value).unwrap(),
            "cut at write {write}"
        );
        let done = send(&mut card, "00B0810004") == hex("31323334 9000");
        if !done {
            assert_eq!(
                in_place, before,
                "cut at write {write}: neither before nor after"
            );
        }
        outcomes[usize::from(done)] += 1;
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}
