//! Issuances in progress: each runs on its own thread (the card and the registry are blocking
//! I/O) and publishes its progress on a watch channel, which the page follows through
//! server-sent events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use host_lib::holder::Applicant;
use serde::Serialize;
use tokio::sync::watch;

use crate::desk::Desk;

/// How an issuance ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Finished {
    /// The card is issued.
    Issued {
        /// Its number.
        card_number: String,
        /// APDUs sent.
        apdus: usize,
        /// Fee in cents.
        fee_cents: u32,
        /// An unfinished issuance was resumed.
        resumed: bool,
    },
    /// Not issued; `resumable`: a card was touched, the same card finishes it.
    Failed {
        /// The whole cause chain.
        message: String,
        /// A card was touched or a number is reserved: the same card finishes it.
        resumable: bool,
        /// Refused because another operator is working on this applicant: (ID number, operator).
        busy: Option<(String, String)>,
    },
}

/// An issuance's state as the page shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobState {
    /// APDUs sent.
    pub done: usize,
    /// APDUs expected.
    pub total: usize,
    /// The phase (probe, recover, write, verify).
    pub phase: String,
    /// What the next APDU does.
    pub step: String,
    /// The end, once there is one.
    pub finished: Option<Finished>,
}

/// One issuance.
pub struct Job {
    /// The operator who started it (only they see it).
    pub login: String,
    /// Who the card is for.
    pub applicant: Applicant,
    /// Its state.
    pub state: watch::Receiver<JobState>,
}

/// How many issuances are kept for their pages.
const KEEP: usize = 256;

/// The issuances of this console.
#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Arc<Job>>>,
}

impl Jobs {
    /// Job `id`.
    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// Starts issuing to `applicant` for the operator of `session`; returns the job id.
    pub fn start(
        &self,
        desk: Arc<Desk>,
        session: &crate::auth::Session,
        applicant: Applicant,
    ) -> u64 {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let (tx, rx) = watch::channel(JobState::default());
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // A day at the counter: the newest finished issuances stay viewable, older ones go.
        if map.len() >= KEEP {
            let mut finished: Vec<u64> = map
                .iter()
                .filter(|(_, j)| j.state.borrow().finished.is_some())
                .map(|(id, _)| *id)
                .collect();
            finished.sort_unstable();
            for old in finished.iter().take(map.len() + 1 - KEEP) {
                map.remove(old);
            }
        }
        map.insert(
            id,
            Arc::new(Job {
                login: session.login.clone(),
                applicant: applicant.clone(),
                state: rx,
            }),
        );
        drop(map);
        let login = session.login.clone();
        let station = session.station.clone();
        std::thread::spawn(move || {
            let finished = run(&desk, &login, &station, &applicant, &tx);
            tx.send_modify(|s| s.finished = Some(finished));
        });
        id
    }
}

fn run(
    desk: &Desk,
    login: &str,
    station: &host_lib::registry::Station,
    applicant: &Applicant,
    tx: &watch::Sender<JobState>,
) -> Finished {
    let _hold = match desk.hold(applicant.id_number().as_str(), login) {
        Ok(h) => h,
        Err(busy) => {
            return Finished::Failed {
                message: busy.to_string(),
                resumable: false,
                busy: Some((busy.what, busy.by)),
            }
        }
    };
    let mut progress = |p: &host_lib::personalize::Progress<'_>| {
        let phase = format!("{:?}", p.phase).to_lowercase();
        tx.send_modify(|s| {
            s.done = p.done;
            s.total = p.total;
            s.phase = phase;
            s.step = p.step.to_owned();
        });
    };
    match desk.issue(login, station, applicant, &mut progress) {
        Ok(o) => Finished::Issued {
            card_number: o.issued.card_number.to_string(),
            apdus: o.report.apdus.total(),
            fee_cents: o.issued.fee_cents,
            resumed: o.reservation.resumed,
        },
        Err(e) => {
            let resumable = e
                .downcast_ref::<host_lib::service::issue::IssueFailure>()
                .is_some_and(|f| {
                    matches!(
                        f,
                        host_lib::service::issue::IssueFailure::Personalize { .. }
                            | host_lib::service::issue::IssueFailure::NoCard { .. }
                            | host_lib::service::issue::IssueFailure::NotRecorded { .. }
                    )
                });
            Finished::Failed {
                message: crate::desk::chain(&e),
                resumable,
                busy: None,
            }
        }
    }
}
