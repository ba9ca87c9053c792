//! The APDU codec: parsing never panics, and whatever parses re-encodes to the same command.
#![no_main]

use card_os::apdu::Command;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = Command::parse(data) {
        let mut out = vec![0u8; cmd.encoded_len()];
        let n = cmd.encode(&mut out).expect("a parsed command encodes");
        let again = Command::parse(&out[..n]).expect("an encoded command parses");
        assert_eq!((again.header(), again.data, again.ne), (cmd.header(), cmd.data, cmd.ne));
    }
});
