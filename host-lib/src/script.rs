//! APDU scripts: parse them, run them against a [`Transport`], check expectations.
//!
//! # Format
//!
//! One step per line:
//!
//! ```text
//! # comments start with '#' (or '//') and run to the end of the line
//! reset                                  # warm reset; prints the ATR
//! 00 A4 04 00 06 F0 43 49 54 5A 01       # an APDU: hex, spaces and colons optional
//! 00A4040006F043495A5401 => 9000         # ... with an expectation
//! 00:B0:95:00:00        => 6A82          # any status word
//! 00 C0 00 00 0E        => 61xx          # 'x' is any hex digit (here: 61 with any SW2)
//! 80 CA 00 04 04        => xx xx xx 01 9000   # whole response: data, then SW1 SW2
//! 00 A4 04 00 02 3F 00  => 6F xx 84 * 9000    # '*' is any number of bytes (also none)
//! 00 A4 04 00 \
//!    02 3F 00                            # a trailing '\' continues the APDU on the next line
//! random BB83BFF3                        # the simulated card's random source replays these bytes
//! exit                                   # stop here (the rest of the file is ignored)
//! ```
//!
//! Expectations (`=> pattern`, after an APDU or `reset`):
//!
//! * the pattern is hex bytes, separated or not; in each byte either digit may be `x`
//!   (any value), and `*` stands for any number of bytes;
//! * a pattern of exactly two bytes and no `*` is matched against the **status word only**, so
//!   `=> 9000` accepts any data with `90 00`;
//! * any other pattern is matched against the **whole response** (data followed by SW1 SW2);
//! * after `reset` the pattern is matched against the ATR.
//!
//! Scripts written for pcsc-tools' `scriptor` (APDU lines, `#` comments, `reset`, `exit`, `\`
//! continuations, one-digit bytes such as `0 A4 4 0`) run unchanged: they simply have no
//! expectations. Every byte group must have an even number of digits (or exactly one); bad hex is
//! reported with its line and column before anything is sent.

use std::fmt;
use std::time::Instant;

use card_os::apdu::{split_response, Sw};
use serde::Serialize;

use crate::hexfmt::{self, spaced};
use crate::transport::{self, Transport};

/// One byte of a pattern: `value` must equal the byte on the bits set in `mask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Byte {
        value: u8,
        mask: u8,
    },
    /// Any number of bytes, none included.
    Any,
}

/// An expectation: what a response (or an ATR) must look like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    tokens: Vec<Token>,
}

impl Pattern {
    /// Parses a pattern (see the module docs). `first_column` is where `text` starts in its line.
    pub fn parse(text: &str, first_column: usize) -> Result<Pattern, hexfmt::HexError> {
        let mut tokens = Vec::new();
        let mut group: Vec<(u8, u8)> = Vec::new(); // (nibble, nibble mask)
        let mut group_start = first_column;
        for (i, c) in text.chars().enumerate() {
            let column = first_column + i;
            if c.is_whitespace() || c == ':' || c == '*' {
                close_group(&mut group, group_start, &mut tokens)?;
                if c == '*' {
                    tokens.push(Token::Any);
                }
            } else {
                let nibble = match c {
                    'x' | 'X' => (0, 0),
                    _ => match c.to_digit(16) {
                        Some(d) => (d as u8, 0xF),
                        None => {
                            return Err(hexfmt::HexError {
                                column,
                                message: format!(
                                    "`{c}` is not a hex digit, `x` or `*` in the expected response"
                                ),
                            })
                        }
                    },
                };
                if group.is_empty() {
                    group_start = column;
                }
                group.push(nibble);
            }
        }
        close_group(&mut group, group_start, &mut tokens)?;
        if tokens.is_empty() {
            return Err(hexfmt::HexError {
                column: first_column,
                message: "`=>` needs an expected status word or response".into(),
            });
        }
        Ok(Pattern {
            text: text.split_whitespace().collect::<Vec<_>>().join(" "),
            tokens,
        })
    }

    /// The pattern as written (whitespace normalized).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern is checked against the status word alone (two bytes, no `*`).
    pub fn is_status_word_only(&self) -> bool {
        self.tokens.len() == 2 && self.tokens.iter().all(|t| matches!(t, Token::Byte { .. }))
    }

    /// Whether `response` (data + SW1 SW2) meets the expectation.
    pub fn matches_response(&self, response: &[u8]) -> bool {
        if self.is_status_word_only() {
            match response {
                [.., sw1, sw2] => glob(&self.tokens, &[*sw1, *sw2]),
                _ => false,
            }
        } else {
            glob(&self.tokens, response)
        }
    }

    /// Whether `bytes` as a whole match (used for ATRs).
    pub fn matches_all(&self, bytes: &[u8]) -> bool {
        glob(&self.tokens, bytes)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn close_group(
    group: &mut Vec<(u8, u8)>,
    start: usize,
    tokens: &mut Vec<Token>,
) -> Result<(), hexfmt::HexError> {
    if !group.len().is_multiple_of(2) {
        return Err(hexfmt::HexError {
            column: start,
            message: format!(
                "odd number of digits ({}) in an expected byte group; write bytes as two digits",
                group.len()
            ),
        });
    }
    tokens.extend(group.chunks(2).map(|p| {
        let (hi, lo) = (p[0], p[1]);
        Token::Byte {
            value: (hi.0 << 4) | lo.0,
            mask: (hi.1 << 4) | lo.1,
        }
    }));
    group.clear();
    Ok(())
}

/// Wildcard matching of `bytes` against `tokens` (`Any` = any run of bytes), without recursion.
fn glob(tokens: &[Token], bytes: &[u8]) -> bool {
    let (mut t, mut b) = (0, 0);
    // Where to resume after the last `Any`: (token after it, byte it currently swallows up to).
    let mut resume: Option<(usize, usize)> = None;
    while b < bytes.len() {
        match tokens.get(t) {
            Some(Token::Byte { value, mask }) if bytes[b] & mask == value & mask => {
                t += 1;
                b += 1;
            }
            Some(Token::Any) => {
                resume = Some((t + 1, b));
                t += 1;
            }
            _ => match resume {
                Some((rt, rb)) => {
                    t = rt;
                    b = rb + 1;
                    resume = Some((rt, rb + 1));
                }
                None => return false,
            },
        }
    }
    tokens[t..].iter().all(|tok| matches!(tok, Token::Any))
}

/// What a step does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this command APDU.
    Apdu(Vec<u8>),
    /// Reset the card.
    Reset,
    /// Make the (simulated) card's random source replay these bytes (`random <hex>`).
    Random(Vec<u8>),
}

/// One step of a script, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Line (or argument) number, 1-based; for a continued APDU, its first line.
    pub line: usize,
    /// What to do.
    pub action: Action,
    /// What the answer must look like, if anything.
    pub expect: Option<Pattern>,
}

/// A parsed script.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// What a "line" is called in messages: `line`, or `argument` for `citizencard apdu`.
    pub unit: &'static str,
}

/// A script that does not parse: where, what, and the offending line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{unit} {line}, column {column}: {message}\n  {text}\n  {caret:>width$}", caret = "^", width = .column)]
pub struct ParseError {
    /// `line` or `argument`.
    pub unit: &'static str,
    /// 1-based line (or argument) number.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// The line as written.
    pub text: String,
}

impl Script {
    /// Parses a script file's text (see the module docs for the format).
    pub fn parse(text: &str) -> Result<Script, ParseError> {
        Self::parse_units(text.lines(), "line")
    }

    /// Parses each of `args` as one script line (`citizencard apdu`): each may be an APDU with an
    /// optional expectation, or `reset`.
    pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Script, ParseError> {
        Self::parse_units(args.iter().map(|a| a.as_ref()), "argument")
    }

    fn parse_units<'a>(
        units: impl Iterator<Item = &'a str>,
        unit: &'static str,
    ) -> Result<Script, ParseError> {
        let mut steps = Vec::new();
        // An APDU continued with '\': its bytes so far and its first line.
        let mut pending: Option<(Vec<u8>, usize)> = None;
        let mut last_line = 0;
        for (i, raw) in units.enumerate() {
            let line = i + 1;
            last_line = line;
            let err = |column: usize, message: String| ParseError {
                unit,
                line,
                column,
                message,
                text: raw.to_string(),
            };
            let body = strip_comment(raw);
            let trimmed = body.trim();
            if trimmed.is_empty() {
                // Blank and comment-only lines are skipped, also inside a `\` continuation
                // (as scriptor does).
                continue;
            }
            let (left, expect_text) = match body.find("=>") {
                Some(p) => (&body[..p], Some((&body[p + 2..], column_of(body, p + 2)))),
                None => (body, None),
            };
            let keyword = left.trim().to_ascii_lowercase();
            if pending.is_none() && (keyword == "exit" || keyword == "quit") {
                if expect_text.is_some() {
                    return Err(err(1, format!("`{keyword}` takes no expectation")));
                }
                return Ok(Script { steps, unit });
            }
            let expect = match expect_text {
                Some((t, col)) => {
                    Some(Pattern::parse(t, col).map_err(|e| err(e.column, e.message))?)
                }
                None => None,
            };
            if pending.is_none() && keyword.starts_with("random") {
                if let Some(hex) = left
                    .trim()
                    .get(6..)
                    .filter(|h| h.starts_with(char::is_whitespace))
                {
                    if expect.is_some() {
                        return Err(err(1, "`random` takes no expectation".into()));
                    }
                    let bytes = hexfmt::parse(hex, 7).map_err(|e| err(e.column, e.message))?;
                    if bytes.is_empty() {
                        return Err(err(1, "`random` needs the bytes to replay, in hex".into()));
                    }
                    steps.push(Step {
                        line,
                        action: Action::Random(bytes),
                        expect: None,
                    });
                    continue;
                }
            }
            if pending.is_none() && keyword == "reset" {
                steps.push(Step {
                    line,
                    action: Action::Reset,
                    expect,
                });
                continue;
            }
            let (hex_part, continues) = match left.trim_end().strip_suffix('\\') {
                Some(h) if expect.is_none() => (h, true),
                Some(_) => {
                    return Err(err(
                        left.trim_end().chars().count(),
                        "a `\\` continuation must come before `=>`".into(),
                    ))
                }
                None => (left, false),
            };
            let bytes = hexfmt::parse(hex_part, 1).map_err(|e| err(e.column, e.message))?;
            let (mut all, first) = pending.take().unwrap_or((Vec::new(), line));
            all.extend_from_slice(&bytes);
            if continues {
                pending = Some((all, first));
                continue;
            }
            if all.is_empty() {
                return Err(err(
                    1,
                    "an expectation needs an APDU before `=>` (or `reset`)".into(),
                ));
            }
            steps.push(Step {
                line: first,
                action: Action::Apdu(all),
                expect,
            });
        }
        if let Some((_, first)) = pending {
            return Err(ParseError {
                unit,
                line: first,
                column: 1,
                message: format!(
                    "the APDU ends with `\\` but the script ends at {unit} {last_line}"
                ),
                text: String::new(),
            });
        }
        Ok(Script { steps, unit })
    }
}

/// The line without its comment (`#` or `//` to the end of the line).
fn strip_comment(line: &str) -> &str {
    let cut = [line.find('#'), line.find("//")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(line.len());
    &line[..cut]
}

/// The 1-based character column of byte offset `byte` in `line`.
fn column_of(line: &str, byte: usize) -> usize {
    line[..byte].chars().count() + 1
}

/// How to run a script.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Go on after an unmet expectation (the run still fails at the end).
    pub keep_going: bool,
    /// An APDU without an expectation must succeed (`9000`, or `61xx` when T=0 handling is off);
    /// `citizencard apdu` uses this, scripts do not (any answer is fine, as in scriptor).
    pub require_success: bool,
}

/// What happened at one step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Line (or argument) number.
    pub line: usize,
    /// What was done and what came back.
    #[serde(flatten)]
    pub exchange: Exchange,
    /// The expectation, as written (`success` for the implicit one of `citizencard apdu`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// Whether the expectation (if any) was met.
    pub ok: bool,
    /// How long the step took, in microseconds (GET RESPONSE rounds included).
    pub elapsed_us: u64,
}

/// One exchange: an APDU and its response, or a reset and the ATR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Exchange {
    /// An APDU.
    Apdu {
        /// The command, hex.
        #[serde(serialize_with = "hexfmt::serialize_upper")]
        command: Vec<u8>,
        /// The whole response, hex.
        #[serde(serialize_with = "hexfmt::serialize_upper")]
        response: Vec<u8>,
        /// The response data, hex.
        #[serde(serialize_with = "hexfmt::serialize_upper")]
        data: Vec<u8>,
        /// The status word, four hex digits.
        sw: String,
        /// What the status word means.
        meaning: &'static str,
    },
    /// Fixed random bytes for the simulated card.
    Random {
        /// The bytes the card's random source replays from now on, hex.
        #[serde(serialize_with = "hexfmt::serialize_upper")]
        random: Vec<u8>,
    },
    /// A reset.
    Reset {
        /// Always true (tells resets apart in JSON).
        reset: bool,
        /// The ATR after the reset, hex.
        #[serde(serialize_with = "hexfmt::serialize_upper")]
        atr: Vec<u8>,
    },
}

impl Exchange {
    fn apdu(command: Vec<u8>, response: Vec<u8>) -> Exchange {
        let (data, sw) = match split_response(&response) {
            Some((d, sw)) => (d.to_vec(), sw),
            None => (Vec::new(), Sw(0)),
        };
        Exchange::Apdu {
            command,
            data,
            sw: format!("{:04X}", sw.0),
            meaning: sw.meaning(),
            response,
        }
    }
}

impl Outcome {
    /// The exchange as text, scriptor-like: `> command` and `< response : SW meaning` lines.
    pub fn to_text(&self) -> String {
        match &self.exchange {
            Exchange::Apdu {
                command,
                response,
                sw,
                meaning,
                ..
            } => format!(
                "> {}\n< {} : {sw} {meaning}\n",
                spaced(command),
                spaced(response)
            ),
            Exchange::Reset { atr, .. } => format!("> RESET\n< ATR {}\n", spaced(atr)),
            Exchange::Random { random } => format!("> RANDOM {}\n", spaced(random)),
        }
    }

    /// For an unmet expectation: where, what was expected and what came (`None` when met).
    pub fn unmet_text(&self, unit: &str) -> Option<String> {
        if self.ok {
            return None;
        }
        let (what, actual) = match &self.exchange {
            Exchange::Apdu { response, .. } => ("response", spaced(response)),
            Exchange::Reset { atr, .. } => ("ATR", spaced(atr)),
            Exchange::Random { random } => ("random bytes", spaced(random)),
        };
        Some(format!(
            "{unit} {}: unexpected {what}\n  expected: {}\n  actual:   {actual}\n",
            self.line,
            self.expected.as_deref().unwrap_or("?"),
        ))
    }
}

/// The result of a run that was not cut short by a transport error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Steps carried out.
    pub steps: usize,
    /// Steps whose expectation was not met.
    pub unmet: usize,
}

impl Summary {
    /// True when every expectation was met.
    pub fn ok(&self) -> bool {
        self.unmet == 0
    }
}

/// A run cut short because the card or reader failed.
#[derive(Debug, thiserror::Error)]
#[error("{unit} {line}: {source}")]
pub struct RunError {
    /// `line` or `argument`.
    pub unit: &'static str,
    /// Where it happened.
    pub line: usize,
    /// What happened.
    pub source: transport::Error,
    /// The steps before it.
    pub summary: Summary,
}

/// Runs `script` on `transport`, calling `report` after every step. Stops at the first unmet
/// expectation unless `options.keep_going`, and at the first transport error in any case.
pub fn run(
    transport: &mut dyn Transport,
    script: &Script,
    options: RunOptions,
    mut report: impl FnMut(&Outcome),
) -> Result<Summary, RunError> {
    let mut summary = Summary::default();
    for step in &script.steps {
        let start = Instant::now();
        let fail = |source, summary| RunError {
            unit: script.unit,
            line: step.line,
            source,
            summary,
        };
        let (exchange, ok, expected) = match &step.action {
            Action::Reset => {
                let atr = transport.reset().map_err(|e| fail(e, summary))?;
                let ok = step.expect.as_ref().is_none_or(|p| p.matches_all(&atr));
                let expected = step.expect.as_ref().map(|p| p.to_string());
                (Exchange::Reset { reset: true, atr }, ok, expected)
            }
            Action::Random(bytes) => {
                transport.fix_random(bytes).map_err(|e| fail(e, summary))?;
                (
                    Exchange::Random {
                        random: bytes.clone(),
                    },
                    true,
                    None,
                )
            }
            Action::Apdu(command) => {
                let response = transport.transmit(command).map_err(|e| fail(e, summary))?;
                let (ok, expected) = match &step.expect {
                    Some(p) => (p.matches_response(&response), Some(p.to_string())),
                    None if options.require_success => (
                        split_response(&response).is_some_and(|(_, sw)| sw.is_success()),
                        Some("success (9000)".to_string()),
                    ),
                    None => (true, None),
                };
                (Exchange::apdu(command.clone(), response), ok, expected)
            }
        };
        let outcome = Outcome {
            line: step.line,
            exchange,
            expected,
            ok,
            elapsed_us: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
        };
        summary.steps += 1;
        if !outcome.ok {
            summary.unmet += 1;
        }
        report(&outcome);
        if !outcome.ok && !options.keep_going {
            break;
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::t0::tests::{h, Scripted};
    use proptest::prelude::*;

    fn apdu(line: usize, hex: &str, expect: Option<&str>) -> Step {
        Step {
            line,
            action: Action::Apdu(h(hex)),
            expect: expect.map(|e| Pattern::parse(e, 1).unwrap()),
        }
    }

    fn pat(s: &str) -> Pattern {
        Pattern::parse(s, 1).unwrap()
    }

    #[test]
    fn parses_scriptor_scripts_unchanged() {
        let text = "# scriptor script\n\
                    reset\n\
                    00 A4 04 00 06 F0 52 55 53 54 01\n\
                    \n\
                    00CA000000\n\
                    0 A4 4 0\n\
                    00 A4 04 00 \\\n\
                    # a comment inside a continuation\n\
                    \x20  02 3F 00\n\
                    exit\n\
                    this is not hex and is never read\n";
        let s = Script::parse(text).unwrap();
        assert_eq!(s.unit, "line");
        assert_eq!(
            s.steps,
            vec![
                Step {
                    line: 2,
                    action: Action::Reset,
                    expect: None
                },
                apdu(3, "00A4040006F05255535401", None),
                apdu(5, "00CA000000", None),
                apdu(6, "00A40400", None),
                apdu(7, "00A40400023F00", None),
            ]
        );
    }

    #[test]
    fn parses_expectations_comments_and_separators() {
        let text = "00:A4:04:00 => 9000  # select MF\n\
                    00B0950000=>6A82\n\
                    RESET => 3B *\n\
                    80CA000004 => xx xx 01 02 90 00 // trailing comment\n\
                    \t00 c0 00 00 0e   =>   61xx\n";
        let s = Script::parse(text).unwrap();
        assert_eq!(s.steps.len(), 5);
        assert_eq!(s.steps[0], apdu(1, "00A40400", Some("9000")));
        assert_eq!(s.steps[1], apdu(2, "00B0950000", Some("6A82")));
        assert_eq!(s.steps[2].action, Action::Reset);
        assert_eq!(s.steps[2].expect.as_ref().unwrap().as_str(), "3B *");
        assert_eq!(
            s.steps[3].expect.as_ref().unwrap().as_str(),
            "xx xx 01 02 90 00"
        );
        assert_eq!(s.steps[4], apdu(5, "00C000000E", Some("61xx")));
    }

    #[test]
    fn bad_hex_is_reported_with_line_and_column() {
        let e = Script::parse("00A40400\n00 A4 0G 00\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 8));
        assert_eq!(e.text, "00 A4 0G 00");
        let shown = e.to_string();
        assert_eq!(
            shown,
            "line 2, column 8: `G` is not a hex digit\n  00 A4 0G 00\n         ^"
        );
        let e = Script::parse("00A4040 => 9000").unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
        assert!(e.message.contains("odd"));
        let e = Script::parse("00A40400 => 90 0").unwrap_err();
        assert_eq!(e.column, 16);
        let e = Script::parse("00A40400 => 9z00").unwrap_err();
        assert_eq!(e.column, 14);
        let e = Script::parse("00A40400 =>   # nothing expected").unwrap_err();
        assert!(e.message.contains("needs an expected"), "{e}");
        let e = Script::parse("=> 9000").unwrap_err();
        assert!(e.message.contains("needs an APDU"), "{e}");
        let e = Script::parse("00 A4 \\\n").unwrap_err();
        assert!(e.message.contains("ends with `\\`"), "{e}");
        let e = Script::parse("00 A4 \\ => 9000").unwrap_err();
        assert!(e.message.contains("before `=>`"), "{e}");
        let e = Script::parse("exit => 9000").unwrap_err();
        assert!(e.message.contains("no expectation"), "{e}");
        let e = Script::parse_args(&["00A40400", "zz"]).unwrap_err();
        assert!(e.to_string().starts_with("argument 2, column 1:"), "{e}");
    }

    #[test]
    fn pattern_matching() {
        // Two bytes: the status word only.
        assert!(pat("9000").is_status_word_only());
        assert!(pat("9000").matches_response(&h("0102039000")));
        assert!(pat("9000").matches_response(&h("9000")));
        assert!(!pat("9000").matches_response(&h("6A82")));
        assert!(!pat("9000").matches_response(&h("90")));
        assert!(pat("61xx").matches_response(&h("6110")));
        assert!(pat("63Cx").matches_response(&h("63C2")));
        assert!(!pat("63Cx").matches_response(&h("6302")));
        assert!(pat("x0 0x").matches_response(&h("9000")));
        // Otherwise the whole response.
        let r = h("6F0A8406F043495A5401A5009000");
        assert!(pat("6F xx 84 06 * 90 00").matches_response(&r));
        assert!(pat("6F xx 84 0E xx*").matches_response(&h("6F10840E01")));
        assert!(!pat("6F xx 84 0E xx*").matches_response(&h("6F10840E")));
        assert!(pat("*").matches_response(&r));
        assert!(pat("* 9000").matches_response(&r));
        assert!(pat("*A5*").matches_response(&r));
        assert!(!pat("* 6A82").matches_response(&r));
        assert!(
            !pat("6F xx 84").matches_response(&r),
            "no implicit trailing *"
        );
        assert!(pat("xx xx 9000").matches_response(&h("01029000")));
        assert!(!pat("xx xx 9000").matches_response(&h("019000")));
        assert!(pat("* 01 * 01 *").matches_response(&h("0001000100")));
        assert!(!pat("* 01 * 01 *").matches_response(&h("00010000")));
        // ATRs are matched whole.
        assert!(pat("3B *").matches_all(&h("3B80800101")));
        assert!(!pat("3B 80").matches_all(&h("3B80800101")));
    }

    /// A transport whose answers are fixed per command.
    fn card(pairs: &[(&str, &str)]) -> Scripted {
        Scripted::new(pairs)
    }

    #[test]
    fn run_stops_at_the_first_unmet_expectation() {
        let s = Script::parse("00A40000 => 9000\n00B00000 => 9000\n00B00001 => 9000\n").unwrap();
        let mut t = card(&[("00A40000", "9000"), ("00B00000", "6A82")]);
        let mut seen = Vec::new();
        let summary = run(&mut t, &s, RunOptions::default(), |o| seen.push(o.clone())).unwrap();
        assert_eq!(summary, Summary { steps: 2, unmet: 1 });
        assert!(!summary.ok());
        assert!(seen[0].ok && !seen[1].ok);
        assert_eq!(
            seen[1].to_text(),
            "> 00 B0 00 00\n< 6A 82 : 6A82 file not found\n"
        );
        assert_eq!(seen[0].unmet_text("line"), None);
        assert_eq!(
            seen[1].unmet_text("line").unwrap(),
            "line 2: unexpected response\n  expected: 9000\n  actual:   6A 82\n"
        );
    }

    #[test]
    fn keep_going_runs_everything() {
        let s = Script::parse("00A40000 => 6A82\n00B00000\n00B00001 => 61xx\n").unwrap();
        let mut t = card(&[
            ("00A40000", "9000"),
            ("00B00000", "6D00"),
            ("00B00001", "6104"),
        ]);
        let options = RunOptions {
            keep_going: true,
            ..RunOptions::default()
        };
        let summary = run(&mut t, &s, options, |_| {}).unwrap();
        assert_eq!(summary, Summary { steps: 3, unmet: 1 });
    }

    #[test]
    fn require_success_applies_only_without_an_expectation() {
        let s = Script::parse_args(&["00A40000", "00B00000 => 6A82", "00B00001"]).unwrap();
        let mut t = card(&[
            ("00A40000", "9000"),
            ("00B00000", "6A82"),
            ("00B00001", "6982"),
        ]);
        let options = RunOptions {
            require_success: true,
            ..RunOptions::default()
        };
        let mut seen = Vec::new();
        let summary = run(&mut t, &s, options, |o| seen.push(o.clone())).unwrap();
        assert_eq!(summary, Summary { steps: 3, unmet: 1 });
        assert!(seen[2]
            .unmet_text("argument")
            .unwrap()
            .starts_with("argument 3: unexpected response"));
    }

    #[test]
    fn json_records() {
        let s = Script::parse("reset => 3B *\n00A4040002 3F00 => 9000\n").unwrap();
        let mut t = card(&[("00A40400023F00", "6F009000")]);
        let mut seen = Vec::new();
        run(&mut t, &s, RunOptions::default(), |o| seen.push(o.clone())).unwrap();
        let mut v0 = serde_json::to_value(&seen[0]).unwrap();
        let mut v1 = serde_json::to_value(&seen[1]).unwrap();
        assert!(v0["elapsed_us"].is_u64());
        v0.as_object_mut().unwrap().remove("elapsed_us");
        v1.as_object_mut().unwrap().remove("elapsed_us");
        assert_eq!(
            v0,
            serde_json::json!({"line":1,"reset":true,"atr":"3B00","expected":"3B *","ok":true})
        );
        assert_eq!(
            v1,
            serde_json::json!({"line":2,"command":"00A40400023F00","response":"6F009000",
                "data":"6F00","sw":"9000","meaning":"success","expected":"9000","ok":true})
        );
    }

    #[test]
    fn random_lines_fix_the_simulated_cards_random_bytes() {
        let s = Script::parse("random BB83BFF3\n0084000004 => BB83BFF3 9000\n").unwrap();
        assert_eq!(
            s.steps[0].action,
            Action::Random(vec![0xBB, 0x83, 0xBF, 0xF3])
        );
        assert!(Script::parse("random\n").is_err(), "bytes are needed");
        assert!(
            Script::parse("random 12 => 9000\n").is_err(),
            "no expectation"
        );
        assert!(Script::parse("random 1G\n").is_err(), "bad hex");
        // On a card that cannot take them (anything but the simulated card) the run stops.
        let mut card = Scripted::new(&[]);
        let e = run(&mut card, &s, RunOptions::default(), |_| {}).unwrap_err();
        assert!(
            e.source.to_string().contains("simulated card"),
            "{}",
            e.source
        );
    }

    #[test]
    fn transport_errors_stop_the_run_with_the_line() {
        struct Gone;
        impl Transport for Gone {
            fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, transport::Error> {
                Err(transport::Error::CardRemoved { reader: "R".into() })
            }
            fn reset(&mut self) -> Result<Vec<u8>, transport::Error> {
                Ok(vec![0x3B])
            }
            fn atr(&self) -> &[u8] {
                &[0x3B]
            }
            fn name(&self) -> &str {
                "gone"
            }
        }
        let s = Script::parse("reset\n\n00A40000\n").unwrap();
        let err = run(&mut Gone, &s, RunOptions::default(), |_| {}).unwrap_err();
        assert_eq!((err.line, err.summary.steps), (3, 1));
        assert!(
            err.to_string().starts_with("line 3: the card was removed"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn parser_never_panics(text in ".{0,200}") {
            let _ = Script::parse(&text);
        }

        #[test]
        fn parser_never_panics_on_script_like_text(
            lines in proptest::collection::vec("[0-9a-fA-FxX *:#/\\\\=>rsetRSET\t]{0,40}", 0..8)
        ) {
            let text = lines.join("\n");
            if let Err(e) = Script::parse(&text) {
                prop_assert!(e.line >= 1 && e.column >= 1);
            }
        }

        #[test]
        fn any_bytes_round_trip_through_the_script_format(
            cmds in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 1..6),
            sep in prop_oneof![Just(""), Just(" "), Just(":")],
        ) {
            let text: String = cmds.iter().map(|c| {
                let parts: Vec<String> = c.iter().map(|b| format!("{b:02x}")).collect();
                format!("{}\n", parts.join(sep))
            }).collect();
            let s = Script::parse(&text).unwrap();
            let got: Vec<Vec<u8>> = s.steps.into_iter().map(|st| match st.action {
                Action::Apdu(b) => b,
                Action::Reset | Action::Random(_) => unreachable!(),
            }).collect();
            prop_assert_eq!(got, cmds);
        }

        #[test]
        fn a_response_matches_its_own_hex_and_wildcards(
            resp in proptest::collection::vec(any::<u8>(), 2..40),
            cut in 0usize..40,
        ) {
            let exact = spaced(&resp);
            prop_assert!(pat(&exact).matches_response(&resp));
            let cut = cut.min(resp.len());
            let prefix = format!("{} *", spaced(&resp[..cut]));
            prop_assert!(pat(&prefix).matches_response(&resp));
            let any_len = vec!["xx"; resp.len()].join(" ");
            prop_assert!(pat(&any_len).matches_response(&resp));
            // One byte more or fewer never matches (unless it is a two-byte SW-only pattern).
            if resp.len() > 3 {
                let longer = vec!["xx"; resp.len() + 1].join(" ");
                prop_assert!(!pat(&longer).matches_response(&resp));
            }
        }
    }
}
