#![no_main]
// The check and its invariants: gatehouse_fuzzcheck::http1_request_head (crates/fuzzcheck).

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_fuzzcheck::http1_request_head(data));
