//! Issuance leases: a card being personalized belongs to one live station.
//!
//! Without them, a second station meeting an applicant whose issuance is unfinished would resume
//! it while the first station is still writing the card, and both cards would verify with the
//! same card number. So the station that reserves a card number ([`Registry::begin_issue_leased`],
//! [`Registry::begin_replace_leased`]) or resumes it ([`Registry::resume_issue_leased`]) takes
//! its lease in the same transaction; another station is refused ([`RegistryError::Leased`])
//! while the lease is live. A lease is live until it expires, and on the same host only while
//! its process runs (a station killed mid-way frees its cards at once, so the operator can finish
//! them by running the command again). [`Registry::complete_issue_leased`] records the card only
//! for the station that holds the lease; for any other it fails with
//! [`RegistryError::LeaseLost`]: the card that station wrote is void.

use std::time::Duration;

use super::db::{params, Conn, OptionalExtension, Tx};
use serde::Serialize;

use super::clock::{format_instant, parse_instant};
use super::{Registry, RegistryError, Result};
use crate::holder::items::CardNumber;

/// A station: one process issuing cards (a service-point PC, a batch run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Station {
    /// Unique per process run: `host/pid/nonce`.
    pub id: String,
    /// The host name.
    pub host: String,
    /// The process id.
    pub pid: u32,
}

impl Station {
    /// This process, on this host.
    pub fn this_process() -> Station {
        let host = this_host();
        let pid = std::process::id();
        let mut nonce = [0u8; 4];
        let _ = getrandom::fill(&mut nonce);
        Station {
            id: format!("{host}/{pid}/{}", hex::encode(nonce)),
            host,
            pid,
        }
    }
}

/// What a station asks for: its lease, for how long.
#[derive(Debug, Clone)]
pub struct LeaseRequest<'a> {
    /// Who.
    pub station: &'a Station,
    /// How long the lease lasts from now.
    pub ttl: Duration,
}

/// The default lease: long enough for a card at a counter, short enough that a station gone
/// elsewhere frees its cards the same morning.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15 * 60);

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// The card being personalized.
    pub card_number: String,
    /// Who holds it.
    pub station: String,
    /// The station's host.
    pub host: String,
    /// The station's process id.
    pub pid: u32,
    /// Since when.
    pub taken_at: String,
    /// Until when.
    pub expires_at: String,
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether the process `pid` of this host still runs (`/proc`; without it, assumed to run).
fn process_runs(pid: u32) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl Lease {
    /// Whether the lease still holds at `now`.
    pub fn is_live(&self, now: &str) -> bool {
        let unexpired = match (parse_instant(&self.expires_at), parse_instant(now)) {
            (Some(e), Some(n)) => e > n,
            _ => true,
        };
        unexpired && (self.host != this_host() || process_runs(self.pid))
    }
}

pub(crate) fn lease_of(conn: &Conn<'_>, card: &str) -> Result<Option<Lease>> {
    Ok(conn
        .query_row(
            "SELECT card_number, station, host, pid, taken_at, expires_at FROM issue_leases \
             WHERE card_number = ?1",
            [card],
            |r| {
                Ok(Lease {
                    card_number: r.get(0)?,
                    station: r.get(1)?,
                    host: r.get(2)?,
                    pid: r.get(3)?,
                    taken_at: r.get(4)?,
                    expires_at: r.get(5)?,
                })
            },
        )
        .optional()?)
}

/// Takes (or renews) the lease of `card` for the requesting station, inside the caller's
/// transaction; refused while another station's lease is live. Returns the lease it replaced
/// (a dead or expired station's), for the audit record.
pub(crate) fn take(
    tx: &Tx<'_>,
    card: &str,
    req: &LeaseRequest<'_>,
    now: time::OffsetDateTime,
) -> Result<Option<Lease>> {
    let at = format_instant(now);
    let existing = lease_of(tx, card)?;
    if let Some(l) = &existing {
        if l.station != req.station.id && l.is_live(&at) {
            return Err(RegistryError::Leased {
                card_number: card.to_owned(),
                station: l.station.clone(),
                expires_at: l.expires_at.clone(),
            });
        }
    }
    let ttl = time::Duration::try_from(req.ttl).unwrap_or(time::Duration::MINUTE);
    tx.execute(
        "INSERT INTO issue_leases (card_number, station, host, pid, taken_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(card_number) DO UPDATE SET \
         station = excluded.station, host = excluded.host, pid = excluded.pid, \
         taken_at = excluded.taken_at, expires_at = excluded.expires_at",
        params![
            card,
            req.station.id,
            req.station.host,
            req.station.pid,
            at,
            format_instant(now + ttl)
        ],
    )?;
    Ok(existing.filter(|l| l.station != req.station.id))
}

/// Checks that `station` holds the lease of `card` (a card without a lease row belongs to
/// nobody in particular: issued before leases, or by a caller that takes none).
pub(crate) fn check_held(tx: &Conn<'_>, card: &str, station: &Station) -> Result<()> {
    match lease_of(tx, card)? {
        Some(l) if l.station != station.id => Err(RegistryError::LeaseLost {
            card_number: card.to_owned(),
            why: format!("station {} took it over at {}", l.station, l.taken_at),
        }),
        _ => Ok(()),
    }
}

/// Ends the lease of `card` (completed or aborted).
pub(crate) fn release(tx: &Tx<'_>, card: &str) -> Result<()> {
    tx.execute("DELETE FROM issue_leases WHERE card_number = ?1", [card])?;
    Ok(())
}

impl Registry {
    /// The lease of a card being personalized, if a station holds one.
    pub fn lease(&self, card: &CardNumber) -> Result<Option<Lease>> {
        lease_of(&self.conn()?, card.as_str())
    }

    /// Renews this station's lease of `card` for `req.ttl` from now, just before it writes the
    /// card: refused with [`RegistryError::LeaseLost`] when another station took it over or the
    /// issuance is no longer in progress, so the station learns it before touching the card.
    /// Leases are operational state, not part of the card's record: the renewal is not audited
    /// (taking and ending a lease are, with the reservation and the completion).
    pub fn renew_lease(&mut self, card: &CardNumber, req: &LeaseRequest<'_>) -> Result<()> {
        let (tx, at) = self.begin()?;
        let status = super::card_status(&tx, card)?;
        if status != super::CardStatus::Personalizing {
            return Err(RegistryError::LeaseLost {
                card_number: card.to_string(),
                why: format!("the registry has it {status} now"),
            });
        }
        check_held(&tx, card.as_str(), req.station)?;
        let now = super::clock::parse_instant(&at).unwrap_or_else(|| self.now());
        take(&tx, card.as_str(), req, now)?;
        tx.commit()?;
        Ok(())
    }
}
