//! Power-cut sweeps: run a command with the power cut at every NVM page write it makes and inside
//! each write (before its first byte, after its first byte, in the middle, before its last byte,
//! right after it), power up again, and check that the card shows either the state before the
//! command or the state after it — never a mix.
//!
//! Optionally the sweep also cuts the recovery that follows each cut, at every write recovery
//! makes (a cut during power-up, then a second power-up).
//!
//! A command that commits more than once (VERIFY commits the spent try before it compares the PIN)
//! has states in between; with [`Sweep::intermediate`] those are handed to the `check` hook, which
//! decides whether they are allowed (a spent try is; an extra try is not).

use super::card::SimCard;
use super::nvm::{MemoryNvm, PowerCut};
use std::format;
use std::string::String;
use std::vec::Vec;

/// The result of a sweep.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Page writes the command makes when the power stays on.
    pub writes: usize,
    /// Cut points exercised during the command.
    pub cut_points: usize,
    /// Cut points exercised during the recovery after a cut.
    pub recovery_cut_points: usize,
    /// Cuts after which the card showed the state after the command.
    pub saw_after: usize,
    /// Cuts after which the card showed the state before the command.
    pub saw_before: usize,
    /// Cuts after which the card showed another state, which `check` accepted (only with
    /// [`Sweep::intermediate`]).
    pub saw_intermediate: usize,
    /// The response to the command without a cut.
    pub response: Vec<u8>,
}

/// What to sweep.
pub struct Sweep<'a> {
    /// The card's memory before the command (powered off).
    pub image: &'a MemoryNvm,
    /// Commands sent after power-up and before the cut is armed (selection, authentication; they
    /// may change persistent state too: "before" is the state after them). `observe` must not
    /// rely on the volatile state they leave: it runs on a freshly powered card.
    pub setup: &'a [&'a [u8]],
    /// The state-changing command.
    pub command: &'a [u8],
    /// Also cut the recovery after each cut.
    pub cut_recovery: bool,
    /// The command commits in several steps: a state that is neither the one before nor the one
    /// after goes to `check` instead of failing the sweep.
    pub intermediate: bool,
}

/// Byte offsets at which to cut a write of `len` bytes.
pub fn offsets_within(len: usize) -> Vec<usize> {
    let mut v = std::vec![0, 1, len / 2, len.saturating_sub(1), len];
    v.retain(|&o| o <= len);
    v.sort_unstable();
    v.dedup();
    v
}

fn power_up(nvm: MemoryNvm) -> Result<SimCard, String> {
    SimCard::from_nvm(nvm).map_err(|(_, e)| format!("power-up failed: {e:?}"))
}

/// Runs the sweep; `observe` reads the state to compare (it must not change persistent state) and
/// `check` may add invariants over (before, after, seen). Returns the first violation as an error.
pub fn sweep<O, C>(s: &Sweep<'_>, mut observe: O, mut check: C) -> Result<SweepReport, String>
where
    O: FnMut(&mut SimCard) -> Result<Vec<u8>, String>,
    C: FnMut(&[u8], &[u8], &[u8]) -> Result<(), String>,
{
    let run = |card: &mut SimCard| {
        for apdu in s.setup {
            card.transmit(apdu);
        }
    };
    let mut report = SweepReport::default();

    // The state before: after the setup commands (which may change persistent state too),
    // seen from a fresh power-up.
    let mut card = power_up(s.image.snapshot())?;
    run(&mut card);
    let mut card = power_up(card.into_nvm())?;
    let before = observe(&mut card)?;

    // The reference run: record the writes.
    let mut card = power_up(s.image.snapshot())?;
    run(&mut card);
    card.nvm_mut().start_recording();
    report.response = card.transmit(s.command);
    let lengths = card.nvm_mut().take_recording();
    report.writes = lengths.len();
    let mut card = power_up(card.into_nvm())?;
    let after = observe(&mut card)?;

    for (write, &len) in lengths.iter().enumerate() {
        for bytes in offsets_within(len) {
            let cut = PowerCut {
                write: write as u64,
                bytes,
            };
            let mut card = power_up(s.image.snapshot())?;
            run(&mut card);
            card.nvm_mut().arm_cut(cut);
            card.transmit(s.command);
            let mut torn = card.into_nvm();
            torn.restore_power();
            report.cut_points += 1;

            if s.cut_recovery {
                let mut probe = torn.snapshot();
                probe.start_recording();
                let recovered = power_up(probe)?;
                let recovery_writes = recovered.into_nvm().take_recording();
                for (rw, &rlen) in recovery_writes.iter().enumerate() {
                    for rbytes in offsets_within(rlen) {
                        let mut twice = torn.snapshot();
                        twice.arm_cut(PowerCut {
                            write: rw as u64,
                            bytes: rbytes,
                        });
                        let mut twice = match SimCard::from_nvm(twice) {
                            Ok(card) => card.into_nvm(),
                            Err((nvm, _)) => nvm,
                        };
                        twice.restore_power();
                        let mut card = power_up(twice)?;
                        let seen = observe(&mut card)?;
                        judge(s, &before, &after, &seen, &mut check, &mut report).map_err(|e| {
                            format!(
                                "cut {cut:?}, then recovery cut at write {rw} byte {rbytes}: {e}"
                            )
                        })?;
                        report.recovery_cut_points += 1;
                    }
                }
            }

            let mut card = power_up(torn)?;
            let seen = observe(&mut card)?;
            judge(s, &before, &after, &seen, &mut check, &mut report)
                .map_err(|e| format!("cut {cut:?} of {len}-byte write: {e}"))?;
        }
    }
    Ok(report)
}

fn judge<C>(
    s: &Sweep<'_>,
    before: &[u8],
    after: &[u8],
    seen: &[u8],
    check: &mut C,
    report: &mut SweepReport,
) -> Result<(), String>
where
    C: FnMut(&[u8], &[u8], &[u8]) -> Result<(), String>,
{
    if seen == after {
        report.saw_after += 1;
    } else if seen == before {
        report.saw_before += 1;
    } else if s.intermediate {
        report.saw_intermediate += 1;
    } else {
        return Err(String::from(
            "the card shows neither the state before nor the state after",
        ));
    }
    check(before, after, seen)
}
