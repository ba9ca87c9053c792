//! `citizencard`: a thin clap layer over host-lib.
fn main() {
    println!("citizencard {}", env!("CARGO_PKG_VERSION"));
}
