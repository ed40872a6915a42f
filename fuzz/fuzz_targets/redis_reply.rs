#![no_main]
// The check and its invariants: gatehouse_fuzzcheck::redis_reply (crates/fuzzcheck).

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_fuzzcheck::redis_reply(data));
