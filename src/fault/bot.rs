//! The bot under test as a real child process, `accessbot serve --config …`: started on the
//! same sled directory every time, its output appended to one log file, killed with SIGKILL
//! (no shutdown code runs, sled is left as the kill found it), and at the end stopped with
//! SIGTERM so the driver can open its store.
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How to start the bot.
#[derive(Clone, Debug)]
pub struct BotCommand {
    /// The `accessbot` binary.
    pub bin: PathBuf,
    pub config: PathBuf,
    /// Every start appends here (stdout and stderr), after a line naming the start.
    pub log: PathBuf,
}

/// One running bot process.
pub struct BotProcess {
    child: Child,
    pub pid: u32,
    /// When it was spawned: kill delays count from here, so a kill can land during start-up.
    pub spawned: Instant,
}

impl BotCommand {
    /// Starts the bot; `start` numbers the starts in the log.
    pub fn spawn(&self, start: usize) -> std::io::Result<BotProcess> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        writeln!(log, "==== accessbot fault: start {start} ====")?;
        let stderr = log.try_clone()?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            // A driver that stops early (error, Ctrl-C) must not leave a bot behind.
            .kill_on_drop(true);
        // The config file is the whole truth of the run: an ACCESSBOT_* override inherited from
        // the operator's shell (say, another listen address) would point the bot elsewhere.
        // The log filter is not configuration and may pass.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with(crate::config::ENV_PREFIX) && k != crate::logging::LOG_ENV {
                cmd.env_remove(&key);
            }
        }
        let child = cmd.spawn()?;
        Ok(BotProcess {
            pid: child.id().unwrap_or(0),
            child,
            spawned: Instant::now(),
        })
    }
}

impl BotProcess {
    /// Exit status, if the process has already ended (by itself: the driver only kills).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL (what tokio's `Child::kill` sends on Unix), then reaps the process. `Some` when
    /// it had already ended by itself before the kill.
    pub async fn kill(mut self) -> std::io::Result<Option<ExitStatus>> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(Some(status));
        }
        self.child.kill().await?;
        Ok(None)
    }

    /// SIGTERM, the bot's clean shutdown (stop serving, finish jobs in flight, flush sled);
    /// SIGKILL if it has not ended within `grace`. `Ok(true)` when it ended cleanly.
    pub async fn terminate(mut self, grace: Duration) -> std::io::Result<bool> {
        if self.child.try_wait()?.is_some() {
            return Ok(false);
        }
        // std and tokio send only SIGKILL; kill(1) is on every Unix this runs on.
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        if sent.success() {
            if let Ok(status) = tokio::time::timeout(grace, self.child.wait()).await {
                return Ok(status?.success());
            }
        }
        self.child.kill().await?;
        Ok(false)
    }
}

/// Polls `GET {url}/healthz` until it answers 200 or `limit` passes; `true` when it did.
pub async fn wait_ready(http: &reqwest::Client, url: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let health = format!("{url}/healthz");
    loop {
        let answered = http
            .get(&health)
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if answered {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        // Start-up takes tens of milliseconds; polling faster only burns a core the bot needs.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The last `lines` lines of the bot's log, for an error message.
pub fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
