#![no_main]
// The check and its invariants: gatehouse_fuzzcheck::cache_policy (crates/fuzzcheck).

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_fuzzcheck::cache_policy(data));
