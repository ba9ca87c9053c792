//! Host-side parsers of hostile input — card responses and files from outside: scripts and
//! expectation patterns, EF05/EF06 records, purse INITIALIZE answers, blacklist files, card images.
//! None may panic.
#![no_main]

use host_lib::holder::items::{CardholderItems, IssuerItems};
use host_lib::keys::{LoadInit, PurchaseInit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = host_lib::script::Script::parse(&text);
    let _ = host_lib::script::Pattern::parse(&text, 1);
    let _ = host_lib::registry::blacklist::parse_text(&text);
    // Records: the input split at each 0xFF byte, as a card's READ RECORD answers.
    let records: Vec<&[u8]> = data.split(|&b| b == 0xFF).collect();
    let _ = CardholderItems::decode(records.iter().copied());
    let _ = IssuerItems::decode(records.iter().copied());
    let _ = LoadInit::parse(data);
    let _ = PurchaseInit::parse(data);
    let _ = card_os::sim::image::from_bytes(data);
});
