//! Reader selection, independent of PC/SC so it can be tested without `pcscd`.
//!
//! Rules, in order:
//!
//! 1. an explicit choice (`-r/--reader`, or `CITIZENCARD_READER`) is an index into the reader list
//!    or part of a reader's name (case-insensitive; an exact name always wins);
//! 2. without one, the single reader that holds a card is used;
//! 3. otherwise the error lists the readers and says how to choose.

use serde::Serialize;

use super::Error;

/// What is in a reader, as far as PC/SC can tell without connecting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CardState {
    /// No card.
    Empty,
    /// A card, not in use by anyone.
    Present,
    /// A card, connected by some process in shared mode.
    InUse,
    /// A card, held exclusively by some process.
    Exclusive,
    /// A card that does not answer reset.
    Mute,
    /// The reader is not available (unplugged, driver error).
    Unavailable,
}

impl CardState {
    /// True when there is a card in the reader (mute or not).
    pub fn has_card(self) -> bool {
        matches!(
            self,
            CardState::Present | CardState::InUse | CardState::Exclusive | CardState::Mute
        )
    }

    /// A short word for listings.
    pub fn as_str(self) -> &'static str {
        match self {
            CardState::Empty => "empty",
            CardState::Present => "card",
            CardState::InUse => "card (in use)",
            CardState::Exclusive => "card (exclusive)",
            CardState::Mute => "card (mute)",
            CardState::Unavailable => "unavailable",
        }
    }
}

/// One reader, as listed by `citizencard readers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReaderInfo {
    /// Position in the PC/SC reader list (what `-r <index>` refers to).
    pub index: usize,
    /// The reader's name.
    pub name: String,
    /// What is in it.
    pub state: CardState,
    /// The card's ATR (empty without a card).
    #[serde(serialize_with = "crate::hexfmt::serialize_upper")]
    pub atr: Vec<u8>,
}

/// The reader list as shown in error messages and by `citizencard readers`.
pub fn format_list(readers: &[ReaderInfo]) -> String {
    if readers.is_empty() {
        return "  (no readers)\n".into();
    }
    let width = readers.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for r in readers {
        out.push_str(&format!(
            "  {:>2}: {:<width$}  {}",
            r.index,
            r.name,
            r.state.as_str()
        ));
        if !r.atr.is_empty() {
            out.push_str("  ATR ");
            out.push_str(&crate::hexfmt::spaced(&r.atr));
        }
        out.push('\n');
    }
    out
}

/// Picks the reader to use from `readers` (see the module docs). An explicitly chosen reader is
/// returned even when it is empty; the caller reports that (or waits).
pub fn choose<'a>(
    readers: &'a [ReaderInfo],
    wanted: Option<&str>,
) -> Result<&'a ReaderInfo, Error> {
    if readers.is_empty() {
        return Err(Error::NoReaders);
    }
    let wanted = wanted.map(str::trim).filter(|w| !w.is_empty());
    let Some(wanted) = wanted else {
        let mut with_card = readers.iter().filter(|r| r.state.has_card());
        return match (with_card.next(), with_card.next()) {
            (Some(r), None) => Ok(r),
            (None, _) => Err(Error::NoCardAnywhere {
                readers: readers.to_vec(),
            }),
            (Some(_), Some(_)) => Err(Error::SeveralCards {
                readers: readers.to_vec(),
            }),
        };
    };
    if let Ok(index) = wanted.parse::<usize>() {
        return readers
            .iter()
            .find(|r| r.index == index)
            .ok_or_else(|| Error::ReaderNotFound {
                wanted: wanted.into(),
                readers: readers.to_vec(),
            });
    }
    if let Some(r) = readers.iter().find(|r| r.name == wanted) {
        return Ok(r);
    }
    let needle = wanted.to_lowercase();
    let matches: Vec<&ReaderInfo> = readers
        .iter()
        .filter(|r| r.name.to_lowercase().contains(&needle))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::ReaderNotFound {
            wanted: wanted.into(),
            readers: readers.to_vec(),
        }),
        several => Err(Error::AmbiguousReader {
            wanted: wanted.into(),
            readers: several.iter().map(|r| (*r).clone()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(index: usize, name: &str, state: CardState) -> ReaderInfo {
        ReaderInfo {
            index,
            name: name.into(),
            state,
            atr: if state.has_card() {
                vec![0x3B, 0x80]
            } else {
                vec![]
            },
        }
    }

    fn two_vpcd(s0: CardState, s1: CardState) -> Vec<ReaderInfo> {
        vec![r(0, "Virtual PCD 00 00", s0), r(1, "Virtual PCD 00 01", s1)]
    }

    #[test]
    fn no_readers() {
        assert!(matches!(choose(&[], None), Err(Error::NoReaders)));
        assert!(matches!(choose(&[], Some("0")), Err(Error::NoReaders)));
    }

    #[test]
    fn implicit_choice_needs_exactly_one_card() {
        use CardState::*;
        let rs = two_vpcd(Empty, Present);
        assert_eq!(choose(&rs, None).unwrap().index, 1);
        // Blank selectors count as none (an empty CITIZENCARD_READER).
        assert_eq!(choose(&rs, Some("  ")).unwrap().index, 1);
        let rs = two_vpcd(InUse, Empty);
        assert_eq!(choose(&rs, None).unwrap().index, 0);
        let err = choose(&two_vpcd(Empty, Empty), None).unwrap_err();
        assert!(matches!(err, Error::NoCardAnywhere { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("--wait") && msg.contains("Virtual PCD 00 01"),
            "{msg}"
        );
        let err = choose(&two_vpcd(Present, Exclusive), None).unwrap_err();
        assert!(err.is_usage());
        let msg = err.to_string();
        assert!(
            msg.contains("-r/--reader") && msg.contains("CITIZENCARD_READER"),
            "{msg}"
        );
        assert!(
            msg.contains(" 0: Virtual PCD 00 00") && msg.contains("ATR 3B 80"),
            "{msg}"
        );
    }

    #[test]
    fn by_index() {
        use CardState::*;
        let rs = two_vpcd(Present, Present);
        assert_eq!(choose(&rs, Some("1")).unwrap().name, "Virtual PCD 00 01");
        // An explicit choice may be empty: the caller waits or reports NoCard.
        let rs = two_vpcd(Present, Empty);
        assert_eq!(choose(&rs, Some("1")).unwrap().index, 1);
        let err = choose(&rs, Some("2")).unwrap_err();
        assert!(matches!(&err, Error::ReaderNotFound { wanted, .. } if wanted == "2"));
        assert!(err.is_usage());
    }

    #[test]
    fn by_name() {
        use CardState::*;
        let rs = vec![
            r(0, "Alcor Micro AU9540 00 00", Present),
            r(1, "Virtual PCD 00 00", Empty),
            r(2, "Virtual PCD 00 01", Present),
        ];
        assert_eq!(choose(&rs, Some("alcor")).unwrap().index, 0);
        assert_eq!(choose(&rs, Some("PCD 00 01")).unwrap().index, 2);
        // An exact name wins even when it is a substring of another reader's name.
        let rs2 = vec![r(0, "Reader", Empty), r(1, "Reader 2", Empty)];
        assert_eq!(choose(&rs2, Some("Reader")).unwrap().index, 0);
        let err = choose(&rs, Some("virtual")).unwrap_err();
        match &err {
            Error::AmbiguousReader { readers, .. } => {
                assert_eq!(readers.iter().map(|r| r.index).collect::<Vec<_>>(), [1, 2])
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("several readers"));
        assert!(matches!(
            choose(&rs, Some("gemalto")),
            Err(Error::ReaderNotFound { .. })
        ));
    }

    #[test]
    fn list_format() {
        let s = format_list(&two_vpcd(CardState::Present, CardState::Empty));
        assert_eq!(
            s,
            "   0: Virtual PCD 00 00  card  ATR 3B 80\n   1: Virtual PCD 00 01  empty\n"
        );
        assert_eq!(format_list(&[]), "  (no readers)\n");
    }
}
