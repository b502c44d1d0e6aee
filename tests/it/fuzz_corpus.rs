//! The fuzz targets' bodies (`fuzz/src/lib.rs`, compiled into this binary) replayed over every
//! committed corpus input (`fuzz/corpus/<target>`: seeds from `tests/fixtures`, plus what the
//! fuzzers found that reached new code) and every regression input (`fuzz/regressions/<target>`:
//! inputs that once crashed). Seconds inside `cargo test`, so what the fuzzers proved keeps
//! being checked without the instrumented build; `scripts/fuzz.sh` runs them for minutes.
#[path = "../../fuzz/src/lib.rs"]
mod bodies;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Runs `body` over every input of `target`; names the file of the first input that panics.
fn replay(target: &str, body: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut seen = 0usize;
    for kind in ["corpus", "regressions"] {
        let dir = root.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
                panic!("fuzz target {target} panics on {}", f.display());
            }
            seen += 1;
        }
    }
    // The seeds alone are more than this; fewer means the corpus went missing.
    assert!(
        seen >= 5,
        "{target}: only {seen} corpus inputs under {}",
        root.display()
    );
}

#[test]
fn callback_decrypt_corpus() {
    replay("callback_decrypt", bodies::callback_decrypt);
}

#[test]
fn robot_message_corpus() {
    replay("robot_message", bodies::robot_message);
}

#[test]
fn card_callback_corpus() {
    replay("card_callback", bodies::card_callback);
}

#[test]
fn stream_frame_corpus() {
    replay("stream_frame", bodies::stream_frame);
}

#[test]
fn target_corpus() {
    replay("target", bodies::target);
}

#[test]
fn command_corpus() {
    replay("command", bodies::command);
}
