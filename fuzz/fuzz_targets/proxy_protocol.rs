#![no_main]
// The check and its invariants: gatehouse_fuzzcheck::proxy_protocol (crates/fuzzcheck).

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_fuzzcheck::proxy_protocol(data));
