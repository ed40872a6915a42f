#![no_main]
// The check and its invariants: gatehouse_fuzzcheck::accept_encoding (crates/fuzzcheck).

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_fuzzcheck::accept_encoding(data));
