#![no_main]
// The check and its invariants: gatehouse_fuzzcheck::upstream_response (crates/fuzzcheck).

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_fuzzcheck::upstream_response(data));
