//! End to end through a real pcscd: a card served on vsmartcard's vpcd reader, driven by host-lib,
//! the `citizencard` binary and tools nobody here wrote (opensc-tool, scriptor, pyscard).
//!
//! Run by `scripts/test.sh` (which starts pcscd and sets `CITIZENCARD_E2E=1`). Without the
//! variable every test here prints a note and passes without doing anything; with it, a missing
//! pcscd fails them. The card is the toy test card for now; the real card plugs in through
//! `ServedCard::start(<its VirtualCard adapter>, slot)`.

use std::process::Command;
use std::time::{Duration, Instant};

use host_lib::testing::{e2e_context, run_tool, ServedCard, SlotLock, ToyCard, TOY_AID};
use host_lib::transport::pcsc::PcscTransport;
use host_lib::transport::t0::AutoGetResponse;
use host_lib::transport::{self, Transport};

const VISIBLE: Duration = Duration::from_secs(15);
const TOOL: Duration = Duration::from_secs(30);

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', ':'], "")).unwrap()
}

fn hx(b: &[u8]) -> String {
    hex::encode_upper(b)
}

fn select_toy(le: Option<u8>) -> Vec<u8> {
    let mut v = vec![0x00, 0xA4, 0x04, 0x00, TOY_AID.len() as u8];
    v.extend_from_slice(&TOY_AID);
    v.extend(le);
    v
}

/// Commands whose answers are complete in one exchange (no 61xx/6Cxx), so that every tool,
/// whatever its own T=0 handling, must show exactly the card's answer.
fn plain_commands() -> Vec<Vec<u8>> {
    vec![
        select_toy(Some(0)),
        h("80CA000808"),
        h("80CA010000"),
        h("00A4040002 3F00"),
        h("8012000000"),
        h("A0A4000000"),
        h("80CA0000"),
    ]
}

/// Commands that make the toy card answer 61xx or 6Cxx.
fn t0_commands() -> Vec<Vec<u8>> {
    vec![
        select_toy(None),
        h("00C0000010"),
        h("80CA000804"),
        h("80CA0003"),
    ]
}

/// What a fresh copy of the card answers to `commands`, in process.
fn answers(twin: &ToyCard, commands: &[Vec<u8>]) -> Vec<String> {
    let mut twin = twin.clone();
    commands.iter().map(|c| hx(&twin.process(c))).collect()
}

#[test]
fn host_lib_sees_exactly_what_the_card_answers() {
    let Some(ctx) = e2e_context("host_lib_sees_exactly_what_the_card_answers") else {
        return;
    };
    let card = ToyCard::new();
    let twin = card.clone();
    let served = ServedCard::start(card, 0);
    let reader = served.wait_visible(&ctx, VISIBLE);

    let mut raw = PcscTransport::open(Some(&reader.name), None).unwrap();
    assert_eq!(raw.atr(), served.atr());
    assert_eq!(raw.name(), reader.name);
    let mut commands = plain_commands();
    commands.extend(t0_commands());
    let got: Vec<String> = commands
        .iter()
        .map(|c| hx(&raw.transmit(c).unwrap()))
        .collect();
    assert_eq!(got, answers(&twin, &commands));

    // With T=0 handling, over PC/SC and in process alike.
    let mut auto = AutoGetResponse::new(raw);
    let mut auto_twin = AutoGetResponse::new(twin.clone());
    for c in [
        select_toy(None),
        h("80CA0300"),
        h("80CA000401"),
        h("80CA0101"),
    ] {
        let over_pcsc = auto.transmit(&c).unwrap();
        assert_eq!(hx(&over_pcsc), hx(&auto_twin.transmit(&c).unwrap()));
        assert_eq!(over_pcsc.last_chunk::<2>(), Some(&[0x90, 0x00]));
    }

    // Throughput and the TCP_QUICKACK regression: without quickack every exchange costs ~44 ms.
    let select = select_toy(Some(0));
    let n = 500;
    let start = Instant::now();
    for _ in 0..n {
        auto.transmit(&select).unwrap();
    }
    let per = start.elapsed() / n;
    eprintln!(
        "toy card through pcscd+vpcd: {n} SELECTs, {per:?} per APDU, {:.0} APDUs/s",
        1.0 / per.as_secs_f64()
    );
    assert!(
        per < Duration::from_millis(5),
        "{per:?} per APDU: is TCP_QUICKACK re-armed?"
    );

    // Reset: new power-up, same ATR.
    assert_eq!(auto.reset().unwrap(), served.atr());
    drop(auto);
    let (card, stats) = served.stop();
    assert!(stats.apdus >= n as u64 + commands.len() as u64);
    assert!(card.apdus >= stats.apdus);
}

/// opensc-tool's `Received (SW1=0x90, SW2=0x00):` blocks as response hex strings.
fn parse_opensc(out: &str) -> Vec<String> {
    let mut responses = Vec::new();
    let mut lines = out.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("Received (SW1=0x") else {
            continue;
        };
        let sw1 = &rest[..2];
        let sw2 = &rest[rest.find("SW2=0x").unwrap() + 6..][..2];
        let mut data = String::new();
        // Data lines: up to 16 "XX " groups, then the same bytes as text ("." for unprintable).
        while let Some(next) = lines.peek() {
            if next.starts_with("Sending:") || next.starts_with("Received") || next.is_empty() {
                break;
            }
            data.push_str(&opensc_data_line(next));
            lines.next();
        }
        responses.push(format!("{data}{sw1}{sw2}").to_uppercase());
    }
    responses
}

/// The hex bytes of one opensc-tool data line. The line is `n` groups `XX ` followed by `n`
/// characters of text, padded with spaces in between when the line is not full; the text may
/// itself look like hex (bytes 33 44 print as "3D"), so find the `n` that makes both halves fit.
fn opensc_data_line(line: &str) -> String {
    for n in (1..=16).rev() {
        let Some((hex_part, text)) = line.split_at_checked(3 * n) else {
            continue;
        };
        let groups_ok = hex_part
            .as_bytes()
            .chunks(3)
            .all(|g| g[0].is_ascii_hexdigit() && g[1].is_ascii_hexdigit() && g[2] == b' ');
        let text_ok = text.chars().count() >= n
            && text
                .chars()
                .take(text.chars().count() - n)
                .all(|c| c == ' ');
        if groups_ok && text_ok {
            return hex_part.split_whitespace().collect();
        }
    }
    panic!("not an opensc-tool data line: {line:?}");
}

/// What opensc does with a card's T=0 answers (OpenSC `src/libopensc/apdu.c`): `6Cxx` → the
/// command again with Le = xx; `61xx` after a command without Le → reported as `9000`, nothing
/// fetched; `61xx` after a command with Le → GET RESPONSE until done.
struct OpenscT0<T: Transport>(T);

impl<T: Transport> Transport for OpenscT0<T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, transport::Error> {
        let mut r = self.0.transmit(command)?;
        if let [.., 0x6C, le] = r[..] {
            let mut again = command[..command.len() - 1].to_vec();
            again.push(le);
            r = self.0.transmit(&again)?;
        }
        let has_le = card_os::apdu::Command::parse(command).is_ok_and(|c| c.ne.is_some());
        let mut data = Vec::new();
        while let [.., 0x61, n] = r[..] {
            if !has_le {
                return Ok(vec![0x90, 0x00]);
            }
            data.extend_from_slice(&r[..r.len() - 2]);
            r = self.0.transmit(&[0x00, 0xC0, 0x00, 0x00, n])?;
        }
        data.extend_from_slice(&r);
        Ok(data)
    }
    fn reset(&mut self) -> Result<Vec<u8>, transport::Error> {
        self.0.reset()
    }
    fn atr(&self) -> &[u8] {
        self.0.atr()
    }
    fn name(&self) -> &str {
        self.0.name()
    }
}

/// scriptor's `< 90 00 : Normal processing.` lines (responses wrap after 16 bytes).
fn parse_scriptor(out: &str) -> Vec<String> {
    let mut responses = Vec::new();
    let mut current: Option<String> = None;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("< ") {
            if rest.starts_with("OK:") || rest.starts_with("KO:") {
                continue; // a reset's answer
            }
            current = Some(String::new());
            let body = rest;
            if let Some(done) = push_scriptor_hex(current.as_mut().unwrap(), body) {
                responses.push(done);
                current = None;
            }
        } else if let Some(cur) = current.as_mut() {
            if let Some(done) = push_scriptor_hex(cur, line) {
                responses.push(done);
                current = None;
            }
        }
    }
    responses
}

/// Adds a scriptor hex line to `acc`; returns the whole response when the line ends it (` : `).
fn push_scriptor_hex(acc: &mut String, line: &str) -> Option<String> {
    let (hexpart, end) = match line.find(" : ") {
        Some(p) => (&line[..p], true),
        None => (line, false),
    };
    acc.push_str(&hexpart.split_whitespace().collect::<String>());
    end.then(|| acc.clone())
}

#[test]
fn third_party_tools_see_exactly_what_the_card_answers() {
    let Some(ctx) = e2e_context("third_party_tools_see_exactly_what_the_card_answers") else {
        return;
    };
    let card = ToyCard::new();
    let twin = card.clone();
    let served = ServedCard::start(card, 0);
    let reader = served.wait_visible(&ctx, VISIBLE);
    let plain = plain_commands();
    let expected = answers(&twin, &plain);

    // opensc-tool: -c default, or it sends ~45 probe APDUs of its own first.
    let mut cmd = Command::new("opensc-tool");
    cmd.args(["-r", &reader.index.to_string(), "-c", "default"]);
    for c in &plain {
        cmd.args(["-s", &hx(c)]);
    }
    let out = run_tool(&mut cmd, TOOL);
    assert!(out.status.success(), "opensc-tool failed: {out:?}");
    assert_eq!(
        parse_opensc(&out.stdout),
        expected,
        "opensc-tool output:\n{}",
        out.stdout
    );

    // scriptor runs a script file; it resolves neither 61xx nor 6Cxx, so it sees them raw. Half
    // the lines spaced, half not, as scriptor scripts come.
    let mut all = plain.clone();
    all.extend(t0_commands());
    let script: String = all
        .iter()
        .enumerate()
        .map(|(i, c)| match i % 2 {
            0 => format!("{}\n", hx(c)),
            _ => format!("{}\n", crate_spaced(c)),
        })
        .collect();
    let path = std::env::temp_dir().join(format!("citizencard-e2e-{}.scr", std::process::id()));
    std::fs::write(&path, format!("# written by the e2e test\nreset\n{script}")).unwrap();
    let out = run_tool(
        Command::new("scriptor")
            .args(["-r", &reader.name])
            .arg(&path),
        TOOL,
    );
    // The very same scriptor script through `citizencard script` (raw, like scriptor).
    let ours = run_tool(
        citizencard()
            .args([
                "-r",
                &reader.name,
                "--no-auto-get-response",
                "--json",
                "script",
            ])
            .arg(&path),
        TOOL,
    );
    let _ = std::fs::remove_file(&path);
    assert!(ours.status.success(), "citizencard script failed: {ours:?}");
    let responses: Vec<String> = ours
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| v["response"].as_str().map(str::to_string))
        .collect();
    assert_eq!(responses, answers(&twin, &all));
    assert!(out.status.success(), "scriptor failed: {out:?}");
    assert!(
        out.stdout.contains("< OK: "),
        "scriptor did not reset: {}",
        out.stdout
    );
    assert_eq!(
        parse_scriptor(&out.stdout),
        answers(&twin, &all),
        "scriptor output:\n{}",
        out.stdout
    );

    // pyscard, with Debian's interpreter (pyenv's python3 cannot see python3-pyscard).
    let py = r#"
import sys
from smartcard.System import readers
from smartcard.util import toBytes
r = [x for x in readers() if str(x) == sys.argv[1]][0]
c = r.createConnection()
c.connect()
print("ATR " + bytes(c.getATR()).hex().upper())
for a in sys.argv[2:]:
    data, sw1, sw2 = c.transmit(toBytes(a))
    print(bytes(data + [sw1, sw2]).hex().upper())
c.disconnect()
"#;
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-c", py, &reader.name]);
    for c in &all {
        cmd.arg(hx(c));
    }
    let out = run_tool(&mut cmd, TOOL);
    assert!(out.status.success(), "pyscard failed: {out:?}");
    let mut lines = out.stdout.lines();
    assert_eq!(
        lines.next(),
        Some(format!("ATR {}", hx(served.atr())).as_str())
    );
    assert_eq!(
        lines.map(str::to_string).collect::<Vec<_>>(),
        answers(&twin, &all)
    );
    drop(served);
}

#[test]
fn reader_errors_are_reported_and_survived() {
    let Some(ctx) = e2e_context("reader_errors_are_reported_and_survived") else {
        return;
    };
    let served = ServedCard::start(ToyCard::new(), 0);
    let reader = served.wait_visible(&ctx, VISIBLE);
    let name = std::ffi::CString::new(reader.name.clone()).unwrap();

    // Someone else holds the reader exclusively.
    let other = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let exclusive = other
        .connect(&name, pcsc::ShareMode::Exclusive, pcsc::Protocols::ANY)
        .unwrap();
    let err = PcscTransport::open(Some(&reader.name), None).err().unwrap();
    assert!(
        matches!(err, transport::Error::SharingViolation { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("another process"));
    drop(exclusive);

    // Another process resets the card after we sent something: reconnect, report, carry on.
    let mut t = PcscTransport::open(Some(&reader.name), None).unwrap();
    assert_eq!(
        t.transmit(&select_toy(Some(0))).unwrap().last_chunk::<2>(),
        Some(&[0x90, 0])
    );
    let resetter = other
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .unwrap();
    resetter
        .disconnect(pcsc::Disposition::ResetCard)
        .map_err(|(_, e)| e)
        .unwrap();
    let err = t.transmit(&h("80CA000202")).unwrap_err();
    assert!(matches!(err, transport::Error::CardReset { .. }), "{err}");
    assert!(err.to_string().contains("start again from the SELECT"));
    assert_eq!(hx(&t.transmit(&h("80CA000202")).unwrap()), "5A5B9000");

    // A reset right after connecting loses nothing: the command is simply sent again.
    let mut fresh = PcscTransport::open(Some(&reader.name), None).unwrap();
    let resetter = other
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .unwrap();
    resetter
        .disconnect(pcsc::Disposition::ResetCard)
        .map_err(|(_, e)| e)
        .unwrap();
    assert_eq!(hx(&fresh.transmit(&h("80CA000101")).unwrap()), "5A9000");
    drop(fresh);

    // The card goes away.
    let atr = served.atr().to_vec();
    served.stop();
    ServedCard::<ToyCard>::wait_gone(&ctx, 0, &atr, VISIBLE);
    let err = t.transmit(&h("80CA000101")).unwrap_err();
    assert!(
        matches!(err, transport::Error::CardRemoved { .. }),
        "{err:?}"
    );
    // And an explicitly chosen empty reader says so.
    let err = PcscTransport::open(Some(&reader.name), None).err().unwrap();
    assert!(matches!(err, transport::Error::NoCard { .. }), "{err:?}");
    assert!(err.to_string().contains("--wait"));
}

fn citizencard() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_citizencard"));
    c.env_remove("CITIZENCARD_READER");
    c
}

#[test]
fn the_cli_over_pcsc() {
    let Some(ctx) = e2e_context("the_cli_over_pcsc") else {
        return;
    };
    let served = ServedCard::start(ToyCard::new(), 0);
    let reader = served.wait_visible(&ctx, VISIBLE);
    let atr = hx(served.atr());

    // readers, as text and JSON.
    let out = run_tool(citizencard().arg("readers"), TOOL);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.contains(&reader.name) && out.stdout.contains(&crate_spaced(served.atr())));
    let out = run_tool(citizencard().args(["readers", "--json"]), TOOL);
    let ours = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["name"] == reader.name.as_str())
        .unwrap();
    assert_eq!(ours["atr"], atr.as_str());
    assert_eq!(ours["index"], reader.index);
    assert!(
        ours["state"] == "present" || ours["state"] == "in-use",
        "{ours}"
    );

    // apdu: 61xx resolved by default; raw with --no-auto-get-response; trace shows both exchanges.
    let select = hx(&select_toy(None));
    let fci = hx(&ToyCard::fci());
    let out = run_tool(
        citizencard().args(["-r", &reader.name, "-t", "apdu", &select]),
        TOOL,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.contains(&format!(
        "< {} 90 00 : 9000 success",
        crate_spaced(&ToyCard::fci())
    )));
    let traces: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("trace: "))
        .collect();
    assert_eq!(traces.len(), 2, "{}", out.stderr);
    assert!(traces[0].contains("< 61 "), "{}", traces[0]);
    assert!(traces[1].contains("> 00 C0 00 00 "), "{}", traces[1]);
    let out = run_tool(
        citizencard().args([
            "-r",
            &reader.index.to_string(),
            "--no-auto-get-response",
            "--json",
            "apdu",
            &format!("{select} => 61xx"),
        ]),
        TOOL,
    );
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["sw"], format!("61{:02X}", ToyCard::fci().len()));
    assert_eq!(v["ok"], true);
    // A failing APDU (no expectation: must succeed) → exit 1.
    let out = run_tool(
        citizencard().args(["-r", &reader.name, "apdu", "00A40400023F00"]),
        TOOL,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.contains("6A82 file not found"));

    // script: expectations met, then one unmet (exit 1, line and both values shown).
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.apdu");
    std::fs::write(
        &good,
        format!(
            "# toy card\nreset => {atr}\n{select} => 61xx\n00 C0 00 00 {:02X} => {fci} 9000\n\
             80:CA:00:04:04 => 5A 5B xx 5x 9000\n80CA0300 => *\n",
            ToyCard::fci().len()
        ),
    )
    .unwrap();
    let out = run_tool(
        citizencard()
            .args(["--no-auto-get-response", "-r", &reader.name, "script"])
            .arg(&good),
        TOOL,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.matches("\n> ").count() + 1, 5, "{}", out.stdout);
    let bad = dir.path().join("bad.apdu");
    std::fs::write(
        &bad,
        format!("{select} => 9000\n80CA000202 => 6A82\n80CA000101\n"),
    )
    .unwrap();
    let out = run_tool(
        citizencard().args(["-r", &reader.name, "script"]).arg(&bad),
        TOOL,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("line 2: unexpected response"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("expected: 6A82") && out.stderr.contains("actual:   5A 5B 90 00"));
    assert!(
        !out.stdout.contains("80 CA 00 01 01"),
        "ran past the failure: {}",
        out.stdout
    );
    let out = run_tool(
        citizencard()
            .args(["-r", &reader.name, "script", "--keep-going"])
            .arg(&bad),
        TOOL,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.contains("> 80 CA 00 01 01"), "{}", out.stdout);
    drop(served);
}

fn crate_spaced(b: &[u8]) -> String {
    host_lib::hexfmt::spaced(b)
}

#[test]
fn wait_blocks_until_a_card_arrives() {
    let Some(ctx) = e2e_context("wait_blocks_until_a_card_arrives") else {
        return;
    };
    // Slot 1, so this test can also run beside one that uses slot 0.
    let lock = SlotLock::acquire(1);
    lock.wait_empty(&ctx, VISIBLE);

    let mut child = citizencard()
        .args([
            "--wait",
            "--wait-timeout",
            "30",
            "-r",
            "Virtual PCD 00 01",
            "apdu",
        ])
        .arg(hx(&select_toy(Some(0))))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Still waiting a moment later (nothing in the reader)...
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "did not wait for the card"
    );
    // ...and done once the card shows up.
    let served = ServedCard::start_locked(ToyCard::new(), lock);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "--wait did not notice the card");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let atr = served.atr().to_vec();
    drop(served);
    ServedCard::<ToyCard>::wait_gone(&ctx, 1, &atr, VISIBLE);

    // With a short limit and no card, it gives up with a clear message.
    let out = run_tool(
        citizencard().args([
            "--wait",
            "--wait-timeout",
            "0.5",
            "-r",
            "Virtual PCD 00 01",
            "apdu",
            "00A40000",
        ]),
        TOOL,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("no card appeared"), "{}", out.stderr);
}

/// The toy card, except that INS `EE` pulls it out of the reader while the command runs: the
/// bridge thread unwinds, so the connection closes with no reply.
struct Yanked(ToyCard);

impl card_os::sim::vpcd::VirtualCard for Yanked {
    fn atr(&self) -> Vec<u8> {
        self.0.atr_bytes().to_vec()
    }
    fn power_on(&mut self) {}
    fn power_off(&mut self) {}
    fn reset(&mut self) {}
    fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        if apdu.get(1) == Some(&0xEE) {
            panic!("simulated card removal in the middle of a command (this panic is expected)");
        }
        self.0.process(apdu)
    }
}

#[test]
fn card_removed_during_a_command() {
    let Some(ctx) = e2e_context("card_removed_during_a_command") else {
        return;
    };
    let served = ServedCard::start(Yanked(ToyCard::new()), 0);
    let reader = served.wait_visible(&ctx, VISIBLE);
    let mut t = PcscTransport::open(Some(&reader.name), None).unwrap();
    assert_eq!(hx(&t.transmit(&h("80CA000101")).unwrap()), "5A9000");
    let err = t.transmit(&h("80EE0000")).unwrap_err();
    assert!(
        matches!(err, transport::Error::CardRemoved { .. }),
        "{err:?}"
    );
    assert!(err
        .to_string()
        .contains("may or may not have been carried out"));
    drop(served);
}

/// The real card OS (a blank simulated card) served the same way: PC/SC shows exactly what the
/// same card answers in process.
#[test]
fn the_simulated_card_os_through_pcscd() {
    use card_os::card::HistoricalBytes;
    use card_os::nvm::Geometry;
    use card_os::sim::SimCard;

    let Some(ctx) = e2e_context("the_simulated_card_os_through_pcscd") else {
        return;
    };
    let serial = ToyCard::new().atr_bytes()[8..12].try_into().unwrap();
    let blank = || SimCard::blank(Geometry::DEFAULT, &HistoricalBytes::wenzhou(serial)).unwrap();
    let mut twin = blank();
    let served = ServedCard::start(blank(), 0);
    let reader = served.wait_visible(&ctx, VISIBLE);
    let mut t = PcscTransport::open(Some(&reader.name), None).unwrap();
    assert_eq!(t.atr(), twin.atr());
    for c in [
        "00A40000023F00",
        "00A4000C023F00",
        "00A40000020015",
        "00B0000004",
        "00B2010C00",
        "00CA000000",
        "80CA000000",
        "00A4",
        "B0A40000023F00",
    ] {
        let c = h(c);
        let got = hx(&t.transmit(&c).unwrap());
        assert_eq!(got, hx(&twin.transmit(&c)), "{}", hx(&c));
    }
    // SELECT MF answers 61xx; GET RESPONSE by hand, then by the T=0 layer.
    let select_mf = h("00A40000023F00");
    let first = t.transmit(&select_mf).unwrap();
    assert_eq!(hx(&first), hx(&twin.transmit(&select_mf)));
    if let [0x61, n] = first[..] {
        let gr = [0x00, 0xC0, 0x00, 0x00, n];
        assert_eq!(hx(&t.transmit(&gr).unwrap()), hx(&twin.transmit(&gr)));
    }
    let mut auto = AutoGetResponse::new(t);
    let fci = auto.transmit(&select_mf).unwrap();
    assert_eq!(fci.first(), Some(&0x6F), "an FCI template: {}", hx(&fci));
    assert_eq!(fci.last_chunk::<2>(), Some(&[0x90, 0x00]));
    drop(auto);
    drop(served);
}

/// The segments of a test-vectors transcript: the APDUs between `reset` lines (expectations and
/// comments dropped; the in-process twin decides what is right, and card-os's tests already check
/// the transcript's expectations against it).
fn transcript_segments(text: &str) -> Vec<Vec<Vec<u8>>> {
    let mut segments = vec![Vec::new()];
    for line in text.lines() {
        let content = line.split('#').next().unwrap().trim();
        let apdu = content.split("=>").next().unwrap().trim();
        if apdu.is_empty() {
            continue;
        }
        if apdu.eq_ignore_ascii_case("reset") {
            segments.push(Vec::new());
        } else {
            segments.last_mut().unwrap().push(h(apdu));
        }
    }
    segments.retain(|s| !s.is_empty());
    segments
}

/// Runs segments on a transport, resetting the card before each one.
fn run_segments(t: &mut dyn Transport, segments: &[Vec<Vec<u8>>]) -> Vec<String> {
    let mut out = Vec::new();
    for segment in segments {
        t.reset().unwrap();
        for c in segment {
            out.push(hx(&t.transmit(c).unwrap()));
        }
    }
    out
}

/// The FMCOS transcript of test-vectors/ (every EF type, reads by FID, SFI, record number and
/// identifier, 61xx/6Cxx/GET RESPONSE) on the real card OS served through pcscd: host-lib over
/// PC/SC, opensc-tool, scriptor and pyscard each see exactly what the same card answers in process.
/// Raw tools (scriptor, pyscard, host-lib without the T=0 layer) must match the card's raw answers;
/// host-lib's T=0 layer must match the in-process card through the same layer; opensc-tool, which
/// resolves 61xx and 6Cxx its own way, must match the in-process card through [`OpenscT0`].
#[test]
fn the_fmcos_transcript_through_every_tool() {
    use card_os::card::HistoricalBytes;
    use card_os::nvm::Geometry;
    use card_os::sim::SimCard;
    use host_lib::transport::sim::SimTransport;

    let Some(ctx) = e2e_context("the_fmcos_transcript_through_every_tool") else {
        return;
    };
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../test-vectors/transcripts/fmcos-files.apdu"
    );
    let segments = transcript_segments(&std::fs::read_to_string(path).unwrap());
    assert!(segments.len() >= 2 && segments.iter().map(Vec::len).sum::<usize>() > 60);
    let blank =
        || SimCard::blank(Geometry::DEFAULT, &HistoricalBytes::wenzhou([0, 0, 0, 1])).unwrap();
    let raw_expected = run_segments(&mut SimTransport::from_card(blank(), "twin"), &segments);
    let auto_expected = run_segments(
        &mut AutoGetResponse::new(SimTransport::from_card(blank(), "twin")),
        &segments,
    );
    let opensc_expected = run_segments(
        &mut OpenscT0(SimTransport::from_card(blank(), "twin")),
        &segments,
    );
    assert!(
        raw_expected.iter().any(|r| r.starts_with("61")),
        "the transcript exercises 61xx"
    );
    let flat: Vec<Vec<u8>> = segments.concat();
    // Each run gets a fresh card with the same ATR: wait until pcscd has seen the last one go, or
    // the next run could connect to the departed card.
    let finish = |served: ServedCard<SimCard>| {
        let atr = served.atr().to_vec();
        drop(served);
        ServedCard::<SimCard>::wait_gone(&ctx, 0, &atr, VISIBLE);
    };

    // host-lib over PC/SC, raw and with the T=0 layer; a fresh card for each run.
    for auto in [false, true] {
        let served = ServedCard::start(blank(), 0);
        let reader = served.wait_visible(&ctx, VISIBLE);
        let t = PcscTransport::open(Some(&reader.name), None).unwrap();
        let got = if auto {
            run_segments(&mut AutoGetResponse::new(t), &segments)
        } else {
            let mut t = t;
            run_segments(&mut t, &segments)
        };
        assert_eq!(
            &got,
            if auto { &auto_expected } else { &raw_expected },
            "host-lib (T=0 layer: {auto})"
        );
        finish(served);
    }

    // opensc-tool: one invocation per segment, each after `--reset`.
    let served = ServedCard::start(blank(), 0);
    let reader = served.wait_visible(&ctx, VISIBLE);
    let mut opensc = Vec::new();
    for segment in &segments {
        let reset = run_tool(
            Command::new("opensc-tool").args(["-r", &reader.index.to_string(), "--reset"]),
            TOOL,
        );
        assert!(reset.status.success(), "opensc-tool --reset: {reset:?}");
        let mut cmd = Command::new("opensc-tool");
        cmd.args(["-r", &reader.index.to_string(), "-c", "default"]);
        for c in segment {
            cmd.args(["-s", &hx(c)]);
        }
        let out = run_tool(&mut cmd, TOOL);
        assert!(out.status.success(), "opensc-tool failed: {out:?}");
        opensc.extend(parse_opensc(&out.stdout));
    }
    assert_eq!(opensc, opensc_expected, "opensc-tool");
    finish(served);

    // scriptor: the transcript as a scriptor script (APDU lines and `reset`).
    let served = ServedCard::start(blank(), 0);
    let reader = served.wait_visible(&ctx, VISIBLE);
    let script: String = segments
        .iter()
        .map(|s| {
            format!(
                "reset\n{}",
                s.iter()
                    .map(|c| format!("{}\n", crate_spaced(c)))
                    .collect::<String>()
            )
        })
        .collect();
    let script_path =
        std::env::temp_dir().join(format!("citizencard-fmcos-{}.scr", std::process::id()));
    std::fs::write(&script_path, script).unwrap();
    let out = run_tool(
        Command::new("scriptor")
            .args(["-r", &reader.name])
            .arg(&script_path),
        TOOL,
    );
    let _ = std::fs::remove_file(&script_path);
    assert!(out.status.success(), "scriptor failed: {out:?}");
    assert_eq!(parse_scriptor(&out.stdout), raw_expected, "scriptor");
    finish(served);

    // pyscard with Debian's interpreter; RESET between segments reconnects with a card reset.
    let served = ServedCard::start(blank(), 0);
    let reader = served.wait_visible(&ctx, VISIBLE);
    let py = r#"
import sys
from smartcard.System import readers
from smartcard.util import toBytes
from smartcard.scard import SCARD_RESET_CARD
r = [x for x in readers() if str(x) == sys.argv[1]][0]
c = r.createConnection()
c.connect()
for a in sys.argv[2:]:
    if a == "RESET":
        c.reconnect(disposition=SCARD_RESET_CARD)
        continue
    data, sw1, sw2 = c.transmit(toBytes(a))
    print(bytes(data + [sw1, sw2]).hex().upper())
c.disconnect()
"#;
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-c", py, &reader.name]);
    for segment in &segments {
        cmd.arg("RESET");
        for c in segment {
            cmd.arg(hx(c));
        }
    }
    let out = run_tool(&mut cmd, TOOL);
    assert!(out.status.success(), "pyscard failed: {out:?}");
    assert_eq!(
        out.stdout.lines().map(str::to_string).collect::<Vec<_>>(),
        raw_expected,
        "pyscard"
    );
    finish(served);
    assert_eq!(flat.len(), raw_expected.len());
}

/// What the test hands to the card served through vpcd: bytes for its random source (a transcript's
/// `random` line), and a factory-fresh card to take the place of the current one at the next reset.
#[derive(Default)]
struct CardControl {
    random: Option<Vec<u8>>,
    fresh: Option<card_os::sim::SimCard>,
}

/// A simulated card served through vpcd that obeys a transcript's `random` lines: the test's
/// transport hands the bytes over (`fix_random`) and the card takes them before its next APDU, so
/// GET CHALLENGE answers what the transcript wrote down and its MACs hold through pcscd too. At a
/// reset it becomes the fresh card it was given, if any, so one served card (one vpcd slot, held
/// all along) runs file after file, each from the factory state.
struct ControlledCard {
    card: card_os::sim::SimCard,
    control: std::sync::Arc<std::sync::Mutex<CardControl>>,
}

impl ControlledCard {
    fn take_fresh(&mut self) {
        if let Some(fresh) = self.control.lock().unwrap().fresh.take() {
            self.card = fresh;
        }
    }
}

impl card_os::sim::vpcd::VirtualCard for ControlledCard {
    fn atr(&self) -> Vec<u8> {
        self.card.atr().to_vec()
    }
    fn power_on(&mut self) {
        self.take_fresh();
        let _ = self.card.power_on();
    }
    fn power_off(&mut self) {
        self.card.power_off()
    }
    fn reset(&mut self) {
        self.take_fresh();
        self.card.reset()
    }
    fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        if let Some(bytes) = self.control.lock().unwrap().random.take() {
            self.card.set_rng(card_os::sim::SimRng::fixed(&bytes));
        }
        self.card.transmit(apdu)
    }
}

/// PC/SC to the [`ControlledCard`], with `random` lines passed to it.
struct PcscWithRandom {
    pcsc: PcscTransport,
    control: std::sync::Arc<std::sync::Mutex<CardControl>>,
}

impl Transport for PcscWithRandom {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, transport::Error> {
        self.pcsc.transmit(command)
    }
    fn reset(&mut self) -> Result<Vec<u8>, transport::Error> {
        self.pcsc.reset()
    }
    fn atr(&self) -> &[u8] {
        self.pcsc.atr()
    }
    fn name(&self) -> &str {
        self.pcsc.name()
    }
    fn fix_random(&mut self, bytes: &[u8]) -> Result<(), transport::Error> {
        self.control.lock().unwrap().random = Some(bytes.to_vec());
        Ok(())
    }
}

/// The FMCOS conformance corpus (`test-vectors/fmcos/`: the FMCOS 2.0 manual's chapters 7–8 and
/// public FMCOS sequences) through pcscd: every file on a factory-fresh card served on vpcd (each
/// file starts with `reset`, where the served card becomes a fresh one), run by host-lib's script
/// runner over PC/SC (raw answers, as the corpus writes them down), every expectation met.
#[test]
fn the_fmcos_corpus_through_pcscd() {
    use card_os::card::HistoricalBytes;
    use card_os::nvm::Geometry;
    use card_os::sim::SimCard;
    use host_lib::script::{self, RunOptions, Script};

    let Some(ctx) = e2e_context("the_fmcos_corpus_through_pcscd") else {
        return;
    };
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../test-vectors/fmcos");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "apdu"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{} files", files.len());
    // A serial of its own (the corpus does not depend on it): the next test on the slot, which
    // may start before pcscd has seen this card go, cannot take it for its own.
    let blank = || {
        SimCard::blank(
            Geometry::DEFAULT,
            &HistoricalBytes::wenzhou([0, 0, 0x0F, 0x0C]),
        )
        .unwrap()
    };
    let control = std::sync::Arc::new(std::sync::Mutex::new(CardControl::default()));
    let lock = SlotLock::acquire(0);
    lock.wait_empty(&ctx, VISIBLE);
    let served = ServedCard::start_locked(
        ControlledCard {
            card: blank(),
            control: control.clone(),
        },
        lock,
    );
    let reader = served.wait_visible(&ctx, VISIBLE);
    let mut t = PcscWithRandom {
        pcsc: PcscTransport::open(Some(&reader.name), None).unwrap(),
        control: control.clone(),
    };
    let (mut steps, mut apdus) = (0, 0);
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.lines().any(|l| l.trim() == "reset"),
            "{name} must start with `reset` (the served card becomes a fresh one there)"
        );
        let parsed = Script::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        control.lock().unwrap().fresh = Some(blank());
        let mut sent = 0;
        let mut unmet = Vec::new();
        let options = RunOptions {
            keep_going: true,
            require_success: false,
        };
        let summary = script::run(&mut t, &parsed, options, |o| {
            if matches!(o.exchange, script::Exchange::Apdu { .. }) {
                sent += 1;
            }
            if let Some(text) = o.unmet_text("line") {
                unmet.push(text);
            }
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            control.lock().unwrap().fresh.is_none(),
            "{name}: the served card was not reset to a fresh one"
        );
        assert!(summary.ok(), "{name} through pcscd:\n{}", unmet.concat());
        println!(
            "{name}: {} steps, {sent} APDUs through pcscd",
            summary.steps
        );
        steps += summary.steps;
        apdus += sent;
    }
    println!(
        "FMCOS corpus through pcscd: {} files, {steps} steps, {apdus} APDUs, all expectations met",
        files.len()
    );
    assert!(apdus > 500, "{apdus} APDUs");
    let atr = served.atr().to_vec();
    drop(t);
    drop(served);
    ServedCard::<ControlledCard>::wait_gone(&ctx, 0, &atr, VISIBLE);
}
