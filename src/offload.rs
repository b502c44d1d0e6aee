//! Long synchronous steps (a /sync page parsed or written: tens of milliseconds) kept from
//! holding a runtime worker. A worker busy for that long delays every task queued behind it,
//! DingTalk's acknowledgements included; `scripts/scale.sh` times those during a /sync.
//!
//! On the multi-threaded runtime the step runs in place while the worker's other tasks move to
//! another thread (`tokio::task::block_in_place`); on a current-thread runtime (tests), or
//! outside a runtime, it just runs. Not for code driven by `Handle::block_on` on a thread of its
//! own (a `spawn_blocking` closure that blocks on a future): tokio refuses `block_in_place` there
//! with a panic; such code is off the workers already and should call the step directly.
pub fn off_worker<T>(step: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(step),
        _ => step(),
    }
}
