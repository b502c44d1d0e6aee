//! Long synchronous steps (a /sync page parsed or written: tens of milliseconds) kept from
//! holding a runtime worker. A worker busy for that long delays every task queued behind it,
//! DingTalk's acknowledgements included; `scripts/scale.sh` times those during a /sync.
//!
//! On the multi-threaded runtime the step runs in place while the worker's other tasks move to
//! another thread (`tokio::task::block_in_place`); on a current-thread runtime (tests), or
//! outside a runtime, it just runs; on a thread that is not a worker (a blocking thread, or one
//! blocking on a future there, as the index commit does) tokio runs it in place too (tests below).
pub fn off_worker<T>(step: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(step),
        _ => step(),
    }
}

#[cfg(test)]
mod tests {
    use super::off_worker;

    /// Wherever a /sync step may run: on a worker, on a blocking thread, under a blocking
    /// thread's `block_on` (the index commit), on a current-thread runtime, outside any.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_step_runs_on_workers_and_on_blocking_threads() {
        assert_eq!(off_worker(|| 1), 1);
        let h = tokio::runtime::Handle::current();
        let under_block_on =
            tokio::task::spawn_blocking(move || h.block_on(async { off_worker(|| 2) }));
        assert_eq!(under_block_on.await.unwrap(), 2);
        let blocking = tokio::task::spawn_blocking(|| off_worker(|| 3));
        assert_eq!(blocking.await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_step_runs_on_a_current_thread_runtime() {
        assert_eq!(off_worker(|| 4), 4);
    }

    #[test]
    fn a_step_runs_outside_a_runtime() {
        assert_eq!(off_worker(|| 5), 5);
    }
}
