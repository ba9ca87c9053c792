//! The PC/SC backend: a card in a reader managed by `pcscd`, through the `pcsc` crate.
//!
//! Connections are shared (other processes may use the reader between our commands) and are left
//! as they are on exit (`SCARD_LEAVE_CARD`), so a card keeps its selected application between two
//! `citizencard` runs.
//!
//! When another process resets the card (`SCARD_W_RESET_CARD`), the transport reconnects once. If
//! nothing had been sent since the last connect or reset, the command is simply sent again; if
//! commands had been sent, the card's state they built is gone, so the command is not sent and
//! [`Error::CardReset`] says so (the transport stays usable).

use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

use ::pcsc::{
    Card, Context, Disposition, Protocol, Protocols, ReaderState, Scope, ShareMode, State,
    MAX_BUFFER_SIZE_EXTENDED, PNP_NOTIFICATION,
};

use super::reader::{self, CardState, ReaderInfo};
use super::{Error, Transport};

/// How long a failed exchange waits for pcscd to confirm that the card was removed.
const REMOVAL_GRACE: Duration = Duration::from_secs(2);

/// Maps a PC/SC error of operation `op` on `reader` to a readable [`Error`].
pub fn map_error(e: ::pcsc::Error, op: &'static str, reader: &str) -> Error {
    use ::pcsc::Error as E;
    let reader = reader.to_string();
    match e {
        E::NoService | E::ServiceStopped => Error::NoService,
        E::NoReadersAvailable => Error::NoReaders,
        E::NoSmartcard => Error::NoCard { reader },
        E::RemovedCard => Error::CardRemoved { reader },
        E::SharingViolation => Error::SharingViolation { reader },
        E::ResetCard => Error::CardReset { reader },
        // vpcd (and some readers) answer a transmit to a card that went away with NOT_TRANSACTED.
        E::UnresponsiveCard | E::UnpoweredCard | E::NotTransacted => {
            Error::Unresponsive { reader, source: e }
        }
        source => Error::Pcsc { op, reader, source },
    }
}

/// Connects to `pcscd`.
pub fn establish() -> Result<Context, Error> {
    Context::establish(Scope::User).map_err(|e| map_error(e, "SCardEstablishContext", "-"))
}

/// One look at every reader: names and states, with the PnP pseudo-reader last.
struct Snapshot {
    names: Vec<CString>,
    states: Vec<ReaderState>,
}

impl Snapshot {
    fn take(ctx: &Context) -> Result<Snapshot, Error> {
        let names = match ctx.list_readers_owned() {
            Ok(n) => n,
            Err(::pcsc::Error::NoReadersAvailable) => Vec::new(),
            Err(e) => return Err(map_error(e, "SCardListReaders", "-")),
        };
        let mut states: Vec<ReaderState> = names
            .iter()
            .map(|n| ReaderState::new(n.clone(), State::UNAWARE))
            .chain(std::iter::once(ReaderState::new(
                PNP_NOTIFICATION(),
                State::UNAWARE,
            )))
            .collect();
        match ctx.get_status_change(Duration::ZERO, &mut states) {
            Ok(()) | Err(::pcsc::Error::Timeout) => {}
            // A reader unplugged between the two calls: look again.
            Err(::pcsc::Error::UnknownReader) => return Snapshot::take(ctx),
            Err(e) => return Err(map_error(e, "SCardGetStatusChange", "-")),
        }
        Ok(Snapshot { names, states })
    }

    fn infos(&self) -> Vec<ReaderInfo> {
        self.names
            .iter()
            .zip(&self.states)
            .enumerate()
            .map(|(index, (name, st))| {
                let state = card_state(st.event_state());
                ReaderInfo {
                    index,
                    name: name.to_string_lossy().into_owned(),
                    state,
                    atr: if state.has_card() {
                        st.atr().to_vec()
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect()
    }
}

/// The card state of a reader from its PC/SC state flags.
pub fn card_state(s: State) -> CardState {
    if s.intersects(State::UNAVAILABLE | State::UNKNOWN | State::IGNORE) {
        CardState::Unavailable
    } else if !s.contains(State::PRESENT) {
        CardState::Empty
    } else if s.contains(State::MUTE) {
        CardState::Mute
    } else if s.contains(State::EXCLUSIVE) {
        CardState::Exclusive
    } else if s.contains(State::INUSE) {
        CardState::InUse
    } else {
        CardState::Present
    }
}

/// Every reader with its card state and ATR (an empty list when there are none).
pub fn list_readers(ctx: &Context) -> Result<Vec<ReaderInfo>, Error> {
    Ok(Snapshot::take(ctx)?.infos())
}

/// Errors that `--wait` waits out: they go away when a card or reader arrives.
fn waitable(e: &Error) -> bool {
    matches!(
        e,
        Error::NoReaders
            | Error::NoCard { .. }
            | Error::NoCardAnywhere { .. }
            | Error::ReaderNotFound { .. }
    )
}

/// Chooses the reader to connect to (see [`reader::choose`]); it must hold a card. With
/// `wait = Some(limit)`, waits (with `SCardGetStatusChange`, no polling) until one does, or until
/// `limit` passes (`None` waits indefinitely).
pub fn select_reader(
    ctx: &Context,
    wanted: Option<&str>,
    wait: Option<Option<Duration>>,
) -> Result<CString, Error> {
    let deadline = wait.flatten().map(|d| (Instant::now() + d, d));
    loop {
        let mut snap = Snapshot::take(ctx)?;
        let infos = snap.infos();
        let chosen = reader::choose(&infos, wanted).and_then(|r| {
            if r.state.has_card() {
                Ok(r.index)
            } else {
                Err(Error::NoCard {
                    reader: r.name.clone(),
                })
            }
        });
        let err = match chosen {
            Ok(i) => return Ok(snap.names[i].clone()),
            Err(e) if wait.is_some() && waitable(&e) => e,
            Err(e) => return Err(e),
        };
        let timeout = match deadline {
            Some((end, limit)) => {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::WaitTimeout(limit));
                }
                Some(left)
            }
            None => None,
        };
        // Sleep until a reader's state or the reader list differs from the snapshot.
        for s in &mut snap.states {
            s.sync_current_state();
        }
        match ctx.get_status_change(timeout, &mut snap.states) {
            Ok(()) | Err(::pcsc::Error::UnknownReader) => {}
            Err(::pcsc::Error::Timeout) => {
                return Err(deadline
                    .map(|(_, limit)| Error::WaitTimeout(limit))
                    .unwrap_or(err))
            }
            Err(e) => return Err(map_error(e, "SCardGetStatusChange", "-")),
        }
    }
}

/// A card in a PC/SC reader.
pub struct PcscTransport {
    // Declared before `ctx`, so the card is disconnected before the context is released.
    card: Option<Card>,
    ctx: Context,
    reader: CString,
    name: String,
    atr: Vec<u8>,
    protocol: Option<Protocol>,
    /// Nothing sent since connect or reset: a reset by another process loses no state of ours.
    fresh: bool,
    buf: Vec<u8>,
    /// Shared, or exclusive for the whole connection (see [`PcscTransport::open_exclusive`]).
    share: ShareMode,
}

impl PcscTransport {
    /// Connects to `pcscd`, selects a reader (see [`select_reader`]) and connects to its card.
    pub fn open(wanted: Option<&str>, wait: Option<Option<Duration>>) -> Result<Self, Error> {
        let ctx = establish()?;
        let reader = select_reader(&ctx, wanted, wait)?;
        Self::connect(ctx, &reader)
    }

    /// Like [`open`](Self::open), with the card held exclusively for this process while the
    /// transport lives (`SCARD_SHARE_EXCLUSIVE`): no other application's APDU can come between
    /// two of ours — INITIALIZE and its DEBIT or CREDIT, GET CHALLENGE and the MAC'd command, a
    /// whole personalization. Another application using the card meanwhile makes the connect
    /// fail ([`Error::SharingViolation`]).
    pub fn open_exclusive(
        wanted: Option<&str>,
        wait: Option<Option<Duration>>,
    ) -> Result<Self, Error> {
        let ctx = establish()?;
        let reader = select_reader(&ctx, wanted, wait)?;
        Self::connect_with(ctx, &reader, ShareMode::Exclusive)
    }

    /// Connects (shared, T=0 or T=1) to the card in `reader`.
    pub fn connect(ctx: Context, reader: &CStr) -> Result<Self, Error> {
        Self::connect_with(ctx, reader, ShareMode::Shared)
    }

    fn connect_with(ctx: Context, reader: &CStr, share: ShareMode) -> Result<Self, Error> {
        let name = reader.to_string_lossy().into_owned();
        let card = ctx
            .connect(reader, share, Protocols::ANY)
            .map_err(|e| map_error(e, "SCardConnect", &name))?;
        let mut t = PcscTransport {
            card: Some(card),
            ctx,
            reader: reader.to_owned(),
            name,
            atr: Vec::new(),
            protocol: None,
            fresh: true,
            buf: vec![0; MAX_BUFFER_SIZE_EXTENDED],
            share,
        };
        t.refresh_status()?;
        Ok(t)
    }

    /// The protocol the reader negotiated (vpcd always reports T=1).
    pub fn protocol(&self) -> Option<Protocol> {
        self.protocol
    }

    /// The PC/SC context, e.g. to watch the reader.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    fn card(&mut self) -> Result<&mut Card, Error> {
        let name = self.name.clone();
        self.card.as_mut().ok_or(Error::Protocol {
            reader: name,
            detail: "not connected".into(),
        })
    }

    fn refresh_status(&mut self) -> Result<(), Error> {
        let name = self.name.clone();
        let status = self
            .card()?
            .status2_owned()
            .map_err(|e| map_error(e, "SCardStatus", &name))?;
        self.atr = status.atr().to_vec();
        self.protocol = status.protocol2();
        Ok(())
    }

    fn reconnect_in_place(&mut self, disposition: Disposition) -> Result<(), Error> {
        let name = self.name.clone();
        let share = self.share;
        self.card()?
            .reconnect(share, Protocols::ANY, disposition)
            .map_err(|e| map_error(e, "SCardReconnect", &name))?;
        self.fresh = true;
        self.refresh_status()
    }

    /// After a failed exchange: whether pcscd reports the card gone within `limit` (it notices
    /// a removal at its next presence poll, a few hundred milliseconds later). Waits with
    /// `SCardGetStatusChange`, so it returns as soon as the reader changes.
    fn removed_within(&self, limit: Duration) -> bool {
        let gone = |s: State| !s.contains(State::PRESENT) || s.contains(State::EMPTY);
        let mut rs = [ReaderState::new(self.reader.clone(), State::UNAWARE)];
        if self.ctx.get_status_change(Duration::ZERO, &mut rs).is_err() {
            return false;
        }
        let end = Instant::now() + limit;
        loop {
            if gone(rs[0].event_state()) {
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            rs[0].sync_current_state();
            if self.ctx.get_status_change(left, &mut rs).is_err() {
                return false;
            }
        }
    }

    fn transmit_once(&mut self, command: &[u8]) -> Result<Vec<u8>, ::pcsc::Error> {
        let card = self.card.as_ref().ok_or(::pcsc::Error::InvalidHandle)?;
        let r = card.transmit(command, &mut self.buf)?;
        Ok(r.to_vec())
    }
}

impl Transport for PcscTransport {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, Error> {
        let response = match self.transmit_once(command) {
            Ok(r) => r,
            Err(::pcsc::Error::ResetCard) => {
                let was_fresh = self.fresh;
                self.reconnect_in_place(Disposition::LeaveCard)?;
                if !was_fresh {
                    return Err(Error::CardReset {
                        reader: self.name.clone(),
                    });
                }
                self.transmit_once(command)
                    .map_err(|e| map_error(e, "SCardTransmit", &self.name))?
            }
            Err(::pcsc::Error::NotTransacted) if self.removed_within(REMOVAL_GRACE) => {
                return Err(Error::CardRemoved {
                    reader: self.name.clone(),
                })
            }
            Err(e) => return Err(map_error(e, "SCardTransmit", &self.name)),
        };
        self.fresh = false;
        if response.len() < 2 {
            // pcscd passes an empty answer through when the card vanishes mid-command.
            if self.removed_within(REMOVAL_GRACE) {
                return Err(Error::CardRemoved {
                    reader: self.name.clone(),
                });
            }
            return Err(Error::Protocol {
                reader: self.name.clone(),
                detail: format!(
                    "the card answered {} byte(s), less than a status word; was it removed or \
                     reset during the command?",
                    response.len()
                ),
            });
        }
        Ok(response)
    }

    fn reset(&mut self) -> Result<Vec<u8>, Error> {
        self.reconnect_in_place(Disposition::ResetCard)?;
        Ok(self.atr.clone())
    }

    /// Drops the old connection, then until `wait` has passed: connects to the card in the same
    /// reader as soon as pcscd reports one present, and checks the connection with `SCardStatus`.
    /// A card that pcscd still shows but that is gone (pcscd notices a removal at its next poll)
    /// fails to connect; the loop waits for the reader's next change and tries again.
    fn reconnect(&mut self, wait: Duration) -> Result<Vec<u8>, Error> {
        if let Some(card) = self.card.take() {
            let _ = card.disconnect(Disposition::LeaveCard);
        }
        let deadline = Instant::now() + wait;
        let mut states = [ReaderState::new(self.reader.clone(), State::UNAWARE)];
        loop {
            let _ = self.ctx.get_status_change(Duration::ZERO, &mut states);
            let now = states[0].event_state();
            if now.contains(State::PRESENT) && !now.contains(State::MUTE) {
                match self.ctx.connect(&self.reader, self.share, Protocols::ANY) {
                    Ok(card) => {
                        self.card = Some(card);
                        self.fresh = true;
                        match self.refresh_status() {
                            Ok(()) => return Ok(self.atr.clone()),
                            Err(e) if matches!(e, Error::NoService) => return Err(e),
                            Err(_) => self.card = None,
                        }
                    }
                    Err(e) => {
                        let e = map_error(e, "SCardConnect", &self.name);
                        if matches!(e, Error::NoService | Error::SharingViolation { .. }) {
                            return Err(e);
                        }
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::WaitTimeout(wait));
            }
            // Sleep until the reader changes; at most 250 ms, so a card that pcscd showed present
            // but could not be connected to is tried again.
            states[0].sync_current_state();
            match self
                .ctx
                .get_status_change(left.min(Duration::from_millis(250)), &mut states)
            {
                Ok(()) | Err(::pcsc::Error::Timeout) => {}
                Err(e) => return Err(map_error(e, "SCardGetStatusChange", &self.name)),
            }
        }
    }

    fn atr(&self) -> &[u8] {
        &self.atr
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PcscTransport {
    fn drop(&mut self) {
        if let Some(card) = self.card.take() {
            // Leave the card as it is (the pcsc crate's default would reset it).
            let _ = card.disconnect(Disposition::LeaveCard);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::pcsc::Error as E;

    #[test]
    fn errors_are_mapped_to_actionable_ones() {
        let m = |e| map_error(e, "SCardTransmit", "Virtual PCD 00 00");
        assert!(matches!(m(E::NoService), Error::NoService));
        assert!(matches!(m(E::ServiceStopped), Error::NoService));
        assert!(matches!(m(E::NoReadersAvailable), Error::NoReaders));
        assert!(matches!(m(E::NoSmartcard), Error::NoCard { .. }));
        assert!(matches!(m(E::RemovedCard), Error::CardRemoved { .. }));
        assert!(matches!(
            m(E::SharingViolation),
            Error::SharingViolation { .. }
        ));
        assert!(matches!(m(E::ResetCard), Error::CardReset { .. }));
        assert!(matches!(m(E::UnresponsiveCard), Error::Unresponsive { .. }));
        assert!(matches!(m(E::NotTransacted), Error::Unresponsive { .. }));
        let other = m(E::CommError);
        assert!(matches!(
            other,
            Error::Pcsc {
                op: "SCardTransmit",
                ..
            }
        ));
        let text = other.to_string();
        assert!(
            text.contains("SCardTransmit on `Virtual PCD 00 00`"),
            "{text}"
        );
        assert!(text.contains("0x80100013"), "{text}");
        assert!(m(E::NoService).to_string().contains("pcscd"));
        let no_reader = map_error(E::CommError, "SCardListReaders", "-").to_string();
        assert!(
            no_reader.starts_with("SCardListReaders failed: "),
            "{no_reader}"
        );
        assert!(m(E::SharingViolation)
            .to_string()
            .contains("another process"));
    }

    #[test]
    fn card_states() {
        assert_eq!(card_state(State::EMPTY), CardState::Empty);
        assert_eq!(card_state(State::PRESENT), CardState::Present);
        assert_eq!(card_state(State::PRESENT | State::INUSE), CardState::InUse);
        assert_eq!(
            card_state(State::PRESENT | State::INUSE | State::EXCLUSIVE),
            CardState::Exclusive
        );
        assert_eq!(card_state(State::PRESENT | State::MUTE), CardState::Mute);
        assert_eq!(card_state(State::UNAVAILABLE), CardState::Unavailable);
    }
}
