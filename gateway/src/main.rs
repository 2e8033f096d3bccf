//! Gateway binary: the reverse proxy lands in the gateway issue; until then it only says so.

fn main() {
    eprintln!("gateway: not implemented yet (see the gateway issue); nothing to run");
    std::process::exit(2);
}
