//! The blacklist: cards terminals must refuse, and its export format.
//!
//! A card is blacklisted when it is reported lost (from the instant of the report), when it is
//! replaced and when it is cancelled: in the last two cases the registry has moved or refunded
//! the balance it knew, so the chip's purse must not be spent any more. An entry is lifted only
//! when a loss report is taken back. The export lists the open entries; its format is described
//! in `host-lib/docs/blacklist-format.md`.

use std::io::Write;

use serde::Serialize;

use super::clock::format_instant;
use super::{keyword_enum, Registry, Result};

keyword_enum! {
    /// Why a card is blacklisted.
    BlacklistReason {
        /// Reported lost.
        Lost = "lost",
        /// Replaced by another card.
        Replaced = "replaced",
        /// Cancelled.
        Cancelled = "cancelled",
    }
}

/// One blacklist entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlacklistEntry {
    /// The card.
    pub card_number: String,
    /// Why.
    pub reason: BlacklistReason,
    /// From when (RFC 3339 UTC).
    pub since: String,
    /// When it was lifted, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifted_at: Option<String>,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlacklistFormat {
    /// Line-based text (`citizencard-blacklist 1`).
    Text,
    /// One JSON document.
    Json,
}

/// The name and version written in both formats.
pub const FORMAT_NAME: &str = "citizencard-blacklist";
/// The format version.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize)]
struct JsonExport<'a> {
    format: &'static str,
    version: u32,
    issuer: String,
    generated_at: String,
    count: usize,
    entries: &'a [BlacklistEntry],
}

impl Registry {
    /// Blacklist entries, by card number; lifted ones too if `include_lifted`.
    pub fn blacklist(&self, include_lifted: bool) -> Result<Vec<BlacklistEntry>> {
        let sql = if include_lifted {
            "SELECT card_number, reason, from_at, lifted_at FROM blacklist ORDER BY card_number, id"
        } else {
            "SELECT card_number, reason, from_at, lifted_at FROM blacklist \
             WHERE lifted_at IS NULL ORDER BY card_number"
        };
        let conn = self.conn()?;
        let mut st = conn.prepare(sql)?;
        let rows = st.query_map([], |r| {
            let reason: String = r.get(1)?;
            Ok(BlacklistEntry {
                card_number: r.get(0)?,
                reason: BlacklistReason::parse(&reason).unwrap_or(BlacklistReason::Lost),
                since: r.get(2)?,
                lifted_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<super::db::DbResult<_>>()?)
    }

    /// Writes the open blacklist for terminals. Returns the number of entries.
    pub fn export_blacklist(&self, out: &mut dyn Write, format: BlacklistFormat) -> Result<usize> {
        let entries = self.blacklist(false)?;
        let generated_at = format_instant(self.now());
        let issuer = self.config().city().digits();
        let io = |source| super::RegistryError::Io {
            path: "(blacklist output)".into(),
            source,
        };
        match format {
            BlacklistFormat::Text => {
                let mut s = format!(
                    "# {FORMAT_NAME} {FORMAT_VERSION}\n# issuer {issuer}\n# generated {generated_at}\n"
                );
                for e in &entries {
                    s.push_str(&format!("{} {} {}\n", e.card_number, e.reason, e.since));
                }
                s.push_str(&format!("# end {}\n", entries.len()));
                out.write_all(s.as_bytes()).map_err(io)?;
            }
            BlacklistFormat::Json => {
                let doc = JsonExport {
                    format: FORMAT_NAME,
                    version: FORMAT_VERSION,
                    issuer,
                    generated_at,
                    count: entries.len(),
                    entries: &entries,
                };
                serde_json::to_writer_pretty(&mut *out, &doc)
                    .map_err(|e| io(std::io::Error::other(e)))?;
                out.write_all(b"\n").map_err(io)?;
            }
        }
        Ok(entries.len())
    }
}

/// Why a text blacklist could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlacklistParseError {
    /// The first line is not `# citizencard-blacklist 1`.
    #[error("line 1: not a {FORMAT_NAME} {FORMAT_VERSION} file")]
    Header,
    /// A line that is neither a comment nor an entry.
    #[error("line {line}: {message}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No `# end N` line (the file was cut short).
    #[error("no '# end' line: the file is incomplete")]
    Truncated,
    /// `# end N` disagrees with the entries.
    #[error("the file says it has {declared} entries but has {found}")]
    Count {
        /// What `# end` says.
        declared: usize,
        /// Entries read.
        found: usize,
    },
}

/// Reads the text format back (for terminals' tooling and tests): checks the header, every entry
/// line and the closing count.
pub fn parse_text(text: &str) -> Result<Vec<BlacklistEntry>, BlacklistParseError> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, l)) if l == format!("# {FORMAT_NAME} {FORMAT_VERSION}") => {}
        _ => return Err(BlacklistParseError::Header),
    }
    let mut entries = Vec::new();
    for (i, line) in lines {
        let bad = |message: String| BlacklistParseError::Line {
            line: i + 1,
            message,
        };
        if let Some(end) = line.strip_prefix("# end ") {
            let declared: usize = end
                .trim()
                .parse()
                .map_err(|_| bad(format!("bad count {end:?}")))?;
            if declared != entries.len() {
                return Err(BlacklistParseError::Count {
                    declared,
                    found: entries.len(),
                });
            }
            return Ok(entries);
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let [card, reason, since] = fields[..] else {
            return Err(bad("expected: card-number reason since".into()));
        };
        crate::holder::items::CardNumber::parse(card).map_err(|e| bad(e.to_string()))?;
        let reason = BlacklistReason::parse(reason)
            .ok_or_else(|| bad(format!("unknown reason {reason:?}")))?;
        super::clock::parse_instant(since)
            .ok_or_else(|| bad(format!("{since:?} is not an RFC 3339 instant")))?;
        entries.push(BlacklistEntry {
            card_number: card.to_owned(),
            reason,
            since: since.to_owned(),
            lifted_at: None,
        });
    }
    Err(BlacklistParseError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors() {
        let ok = "# citizencard-blacklist 1\nW00000017 lost 2026-01-10T01:00:00Z\n# end 1\n";
        assert_eq!(parse_text(ok).unwrap().len(), 1);
        assert_eq!(parse_text("hello\n"), Err(BlacklistParseError::Header));
        assert_eq!(
            parse_text("# citizencard-blacklist 1\nW00000017 lost 2026-01-10T01:00:00Z\n"),
            Err(BlacklistParseError::Truncated)
        );
        assert_eq!(
            parse_text("# citizencard-blacklist 1\n# end 3\n"),
            Err(BlacklistParseError::Count {
                declared: 3,
                found: 0
            })
        );
        for bad in [
            "W00000017 stolen 2026-01-10T01:00:00Z",
            "W0000001 lost 2026-01-10T01:00:00Z",
            "W00000017 lost yesterday",
            "W00000017  lost 2026-01-10T01:00:00Z",
        ] {
            let text = format!("# citizencard-blacklist 1\n{bad}\n# end 1\n");
            assert!(
                matches!(
                    parse_text(&text),
                    Err(BlacklistParseError::Line { line: 2, .. })
                ),
                "{bad}"
            );
        }
    }
}
