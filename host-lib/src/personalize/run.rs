//! Running a plan on a card: the blank-card probe and the recovery of an unfinished card, the
//! steps, the read-back verification.

use std::time::Instant;

use super::card_info::CardInfo;
use super::channel::{apdu, Channel, Reply};
use super::plan::{Check, Op, Plan, Step};
use super::{Found, PersonalizeError, Phase, Progress};
use crate::keys::{CardFactors, KeyRef, KeyStore, SecureMessaging, WriteKey};

pub(crate) struct Run<'a, 't> {
    pub ch: Channel<'t>,
    pub keys: &'a dyn KeyStore,
    pub factors: &'a CardFactors,
    pub plan: &'a Plan,
    pub progress: &'a mut dyn FnMut(&Progress<'_>),
    pub total: usize,
    pub phase: Phase,
    pub started: Instant,
}

impl Run<'_, '_> {
    fn key<'k>(&'k self, name: &'k str) -> KeyRef<'k> {
        KeyRef::new(name, self.factors)
    }

    fn transport_err(&self, source: crate::transport::Error) -> PersonalizeError {
        PersonalizeError::Transport {
            sent: self.ch.sent(),
            source,
        }
    }

    /// Sends a command; transport failures become errors, the answer is returned as it is.
    fn send(&mut self, what: &str, apdu: &[u8]) -> Result<Reply, PersonalizeError> {
        (self.progress)(&Progress {
            done: self.ch.sent(),
            total: self.total.max(self.ch.sent() + 1),
            phase: self.phase,
            step: what,
        });
        self.ch.send(apdu).map_err(|e| self.transport_err(e))
    }

    /// Sends a command that must succeed.
    fn expect(&mut self, what: &str, apdu: &[u8]) -> Result<Vec<u8>, PersonalizeError> {
        let r = self.send(what, apdu)?;
        if r.ok() {
            Ok(r.data)
        } else {
            Err(refused(what, apdu, &r))
        }
    }

    fn challenge(&mut self, what: &str, len: u8) -> Result<Vec<u8>, PersonalizeError> {
        let c = self.expect(
            &format!("{what}: GET CHALLENGE"),
            &[0x00, 0x84, 0x00, 0x00, len],
        )?;
        if c.len() != usize::from(len) {
            return Err(PersonalizeError::Card {
                step: what.to_owned(),
                detail: format!("GET CHALLENGE answered {} bytes, not {len}", c.len()),
            });
        }
        Ok(c)
    }

    pub(crate) fn reset(&mut self) -> Result<(), PersonalizeError> {
        self.ch
            .reset()
            .map(|_| ())
            .map_err(|e| self.transport_err(e))
    }

    /// WRITE KEY `84 D4 p1 p2` of `name` with `layout`, protected under the transport key.
    fn write_key(
        &mut self,
        what: &str,
        header: [u8; 4],
        name: &str,
        layout: &crate::keys::KeyRecordLayout,
    ) -> Result<Reply, PersonalizeError> {
        let challenge = self.challenge(what, 4)?;
        let transport = self.plan.transport_key.clone();
        let data = self
            .keys
            .write_key(
                &WriteKey {
                    header,
                    key: self.key(name),
                    layout,
                },
                self.key(&transport),
                SecureMessaging::Fmcos {
                    challenge: &challenge,
                },
            )
            .map_err(PersonalizeError::Keys)?;
        self.send(what, &apdu(header, &data, None))
    }

    /// LD/T 32 EXTERNAL AUTHENTICATE with key `name` (id `id`).
    pub(crate) fn authenticate(
        &mut self,
        what: &str,
        name: &str,
        id: u8,
    ) -> Result<Reply, PersonalizeError> {
        let challenge = self.challenge(what, 8)?;
        let mut original = [0u8; 8];
        getrandom::fill(&mut original).map_err(|e| PersonalizeError::Card {
            step: what.to_owned(),
            detail: format!("no random number from the operating system: {e}"),
        })?;
        let auth = self
            .keys
            .ldt32_external_authenticate(self.key(name), &challenge, &original)
            .map_err(PersonalizeError::Keys)?;
        let data = [&auth[..], &original[..]].concat();
        self.send(what, &apdu([0x00, 0x82, 0x00, id], &data, None))
    }

    /// A write command, line-protected when asked (GET CHALLENGE first).
    fn write(
        &mut self,
        what: &str,
        header: [u8; 4],
        data: &[u8],
        protect: Option<&super::plan::Protect>,
    ) -> Result<(), PersonalizeError> {
        let Some(p) = protect else {
            self.expect(what, &apdu(header, data, None))?;
            return Ok(());
        };
        let challenge = self.challenge(what, 4)?;
        let header = [header[0] | 0x04, header[1], header[2], header[3]];
        let key = p.key.clone();
        let protected = self
            .keys
            .protect_command(
                self.key(&key),
                p.encrypt.then(|| self.key(&key)),
                SecureMessaging::Fmcos {
                    challenge: &challenge,
                },
                header,
                data,
            )
            .map_err(PersonalizeError::Keys)?;
        self.expect(what, &apdu(header, &protected, None))?;
        Ok(())
    }

    pub(crate) fn step(&mut self, s: &Step) -> Result<(), PersonalizeError> {
        let what = format!("{}: {}", s.df, s.what);
        match &s.op {
            Op::RedefineMf(data) => {
                self.expect(&what, &apdu([0x80, 0xE0, 0x3F, 0x00], data, None))?;
            }
            Op::Create { fid, data } => {
                let [f0, f1] = fid.to_be_bytes();
                self.expect(&what, &apdu([0x80, 0xE0, f0, f1], data, None))?;
            }
            Op::MasterPlain { layout } => {
                let header = [0x80, 0xD4, 0x01, 0x00];
                let transport = self.plan.transport_key.clone();
                let data = self
                    .keys
                    .write_key_plain(&WriteKey {
                        header,
                        key: self.key(&transport),
                        layout,
                    })
                    .map_err(PersonalizeError::Keys)?;
                self.expect(&what, &apdu(header, &data, None))?;
            }
            Op::AddKey { name, id, layout } => {
                let r = self.write_key(&what, [0x84, 0xD4, 0x01, *id], name, layout)?;
                if !r.ok() {
                    return Err(refused(&what, &[0x84, 0xD4, 0x01, *id], &r));
                }
            }
            Op::AddPin { id, record } => {
                let challenge = self.challenge(&what, 4)?;
                let header = [0x84, 0xD4, 0x01, *id];
                let transport = self.plan.transport_key.clone();
                let t = self.key(&transport);
                let data = self
                    .keys
                    .protect_command(
                        t,
                        Some(t),
                        SecureMessaging::Fmcos {
                            challenge: &challenge,
                        },
                        header,
                        record,
                    )
                    .map_err(PersonalizeError::Keys)?;
                self.expect(&what, &apdu(header, &data, None))?;
            }
            Op::ReplaceMaster { name, layout } => {
                let r = self.write_key(&what, [0x84, 0xD4, 0x39, 0x00], name, layout)?;
                if !r.ok() {
                    return Err(refused(&what, &[0x84, 0xD4, 0x39, 0x00], &r));
                }
            }
            Op::Authenticate { name, id } => {
                let r = self.authenticate(&what, name, *id)?;
                if !r.ok() {
                    return Err(refused(&what, &[0x00, 0x82, 0x00, *id], &r));
                }
            }
            Op::Update {
                sfi,
                offset,
                data,
                protect,
            } => {
                // By SFI while the offset fits P2 (the first piece makes the EF current).
                let header = if *offset <= 0xFF {
                    [0x00, 0xD6, 0x80 | sfi, *offset as u8]
                } else {
                    let [o0, o1] = offset.to_be_bytes();
                    [0x00, 0xD6, o0 & 0x7F, o1]
                };
                self.write(&what, header, data, protect.as_ref())?;
            }
            Op::Append {
                sfi,
                record,
                protect,
            } => {
                self.write(
                    &what,
                    [0x00, 0xE2, 0x00, sfi << 3],
                    record,
                    protect.as_ref(),
                )?;
            }
            Op::Select { fid } => {
                let [f0, f1] = fid.to_be_bytes();
                self.expect(&what, &[0x00, 0xA4, 0x00, 0x0C, 0x02, f0, f1])?;
            }
        }
        Ok(())
    }

    /// Reads the card information EF of the current DF (the MF after a reset): `None` when there
    /// is none.
    pub(crate) fn card_info(&mut self) -> Result<Option<CardInfo>, PersonalizeError> {
        let sfi = self.plan.card_info_sfi;
        let what = "3F00: read the card information";
        let cmd = [
            0x00,
            0xB0,
            0x80 | sfi,
            0x00,
            crate::profile::CARD_INFO_LEN as u8,
        ];
        let r = self.send(what, &cmd)?;
        match r.sw {
            0x9000 => {
                CardInfo::decode(&r.data)
                    .map(Some)
                    .map_err(|detail| PersonalizeError::Card {
                        step: what.into(),
                        detail: format!("the card information is not ours: {detail}"),
                    })
            }
            0x6A82 => Ok(None),
            _ => Err(refused(what, &cmd, &r)),
        }
    }

    /// Makes a card ready for the plan's steps from the second on: the first step (the MF's
    /// redefinition) succeeds only on a blank card; any other card is issued (left alone) or
    /// unfinished (erased, after getting MF authority with the MF master, whichever key it is
    /// now).
    pub(crate) fn prepare(&mut self) -> Result<Found, PersonalizeError> {
        let first = &self.plan.steps[0];
        let Op::RedefineMf(data) = &first.op else {
            unreachable!("a plan starts with the MF")
        };
        let data = data.clone();
        let what = format!("{}: {}", first.df, first.what);
        let r = self.send(&what, &apdu([0x80, 0xE0, 0x3F, 0x00], &data, None))?;
        if r.ok() {
            return Ok(Found::Blank);
        }
        // The MF has files: whose card is it, and how far did it get?
        if let Some(info) = self.card_info()? {
            if info.issued {
                return Ok(Found::Issued(info));
            }
        }
        self.phase = Phase::Recovering;
        let (mf_master, layout) = self.plan.mf_master.clone();
        // Make the MF master the key set's, whatever it is now: the replacement is protected
        // under the transport key, so it succeeds only if the transport key is still there, and
        // a refusal (9302) spends no try.
        let replace = "3F00: recover: replace a transport master";
        let r = self.write_key(replace, [0x84, 0xD4, 0x39, 0x00], &mf_master, &layout)?;
        match r.sw {
            0x9000 | 0x9302 => {}
            0x6A88 => {
                // The key file exists, its master does not (cut right after creating it).
                let header = [0x80, 0xD4, 0x01, 0x00];
                let transport = self.plan.transport_key.clone();
                let plain = self
                    .keys
                    .write_key_plain(&WriteKey {
                        header,
                        key: self.key(&transport),
                        layout: &layout,
                    })
                    .map_err(PersonalizeError::Keys)?;
                self.expect(
                    "3F00: recover: the transport key as master",
                    &apdu(header, &plain, None),
                )?;
                let r = self.write_key(replace, [0x84, 0xD4, 0x39, 0x00], &mf_master, &layout)?;
                if !r.ok() {
                    return Err(refused(replace, &[0x84, 0xD4, 0x39, 0x00], &r));
                }
            }
            _ => return Err(refused(replace, &[0x84, 0xD4, 0x39, 0x00], &r)),
        }
        let auth = format!("3F00: recover: authenticate with {mf_master}");
        let r = self.authenticate(&auth, &mf_master, 0)?;
        if !r.ok() {
            return Err(PersonalizeError::ForeignCard(format!(
                "its MF master key is neither the transport key nor {mf_master} of key set {} \
                 (EXTERNAL AUTHENTICATE answered {:04X}, {}): it was personalized by someone \
                 else or with another key set; it is left as it is",
                self.keys.identity().id,
                r.sw,
                r.meaning()
            )));
        }
        self.expect(
            "3F00: recover: erase everything (ERASE DF)",
            &[0x80, 0x0E, 0x00, 0x00, 0x00],
        )?;
        self.expect(&what, &apdu([0x80, 0xE0, 0x3F, 0x00], &data, None))?;
        Ok(Found::Unfinished)
    }

    /// Reads back what the plan wrote (after a reset), through the card's own access rules.
    pub(crate) fn verify(&mut self) -> Result<(), PersonalizeError> {
        self.phase = Phase::Verifying;
        let checks = self.plan.checks.clone();
        for v in &checks {
            let what = format!("verify {}", v.what);
            match &v.check {
                Check::SelectName { name, fci } => {
                    let cmd = apdu([0x00, 0xA4, 0x04, 0x00], name, Some(0x00));
                    let got = self.expect(&what, &cmd)?;
                    compare(&v.what, fci, &got)?;
                }
                Check::Authenticate { name, id } => {
                    let r = self.authenticate(&what, name, *id)?;
                    if !r.ok() {
                        return Err(refused(&what, &[0x00, 0x82, 0x00, *id], &r));
                    }
                }
                Check::Binary { sfi, data } => {
                    let mut got = Vec::with_capacity(data.len());
                    while got.len() < data.len() {
                        let offset = got.len();
                        let n = (data.len() - offset).min(256);
                        let le = (n & 0xFF) as u8;
                        let cmd = if offset == 0 {
                            [0x00, 0xB0, 0x80 | sfi, 0x00, le]
                        } else {
                            let [o0, o1] = (offset as u16).to_be_bytes();
                            [0x00, 0xB0, o0 & 0x7F, o1, le]
                        };
                        let part = self.expect(&what, &cmd)?;
                        if part.is_empty() {
                            break;
                        }
                        got.extend(part);
                    }
                    compare(&v.what, data, &got)?;
                }
                Check::Record { sfi, number, data } => {
                    let cmd = [0x00, 0xB2, *number, (sfi << 3) | 0x04, 0x00];
                    let got = self.expect(&what, &cmd)?;
                    compare(&v.what, data, &got)?;
                }
            }
        }
        Ok(())
    }
}

fn compare(what: &str, expected: &[u8], found: &[u8]) -> Result<(), PersonalizeError> {
    if expected == found {
        return Ok(());
    }
    let short = |b: &[u8]| {
        if b.len() > 48 {
            format!("{}… ({} bytes)", hex::encode_upper(&b[..48]), b.len())
        } else {
            hex::encode_upper(b)
        }
    };
    Err(PersonalizeError::Verification {
        what: what.to_owned(),
        expected: short(expected),
        found: short(found),
    })
}

/// A refusal: the command's header and the status word with its meaning.
pub(crate) fn refused(step: &str, apdu: &[u8], r: &Reply) -> PersonalizeError {
    PersonalizeError::Refused {
        step: step.to_owned(),
        command: crate::hexfmt::spaced(&apdu[..apdu.len().min(4)]),
        sw: r.sw,
        meaning: r.meaning().to_owned(),
    }
}
