//! libFuzzer entry for [`accessbot_fuzz::card_callback`]; the body lives in the library so the main test
//! suite replays the same code over the corpus.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| accessbot_fuzz::card_callback(data));
