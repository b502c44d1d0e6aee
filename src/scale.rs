//! `accessbot scale` (hidden): times `/sync` of a large org. Seeds the simulated JumpServer
//! (`sandbox::jumpserver::scale`, 10k users / 50k hosts / 10k permissions / 200k relation rows
//! by default), runs this binary as the bot (`serve`, a real child process, as `fault` does),
//! has the admin send `/sync` over the simulated DingTalk, and reports the wall time, the
//! JumpServer requests the simulator counted, the bot's peak and settled RSS from
//! `/proc/<pid>/status` (`VmHWM`, `VmRSS`), and how long DingTalk waited for acknowledgements of
//! the event pushes it sent meanwhile (`AckProbe`). Then it checks the index answers: `/who-has`
//! for one host and one user. See scripts/scale.sh and docs/benchmarks.md.
use crate::clock::SystemClock;
use crate::demo::ZHAOLIU;
use crate::domain::ids::DingUserId;
use crate::fault::bot::{log_tail, wait_ready, BotCommand};
use crate::fault::{bot_config_doc, free_port, Approval};
use crate::sandbox::dingtalk::{SimDingTalk, SimDingTalkOptions};
use crate::sandbox::jumpserver::scale::ScaleSpec;
use crate::sandbox::jumpserver::{SimJmsOptions, SimJumpServer};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct ScaleOptions {
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub spec: ScaleSpec,
    /// `[jumpserver] sync_requests_per_minute` for the bot (0 = unpaced, to time the bot).
    pub sync_requests_per_minute: u32,
    /// `[storage] cache_capacity_mb`.
    pub cache_capacity_mb: u64,
    /// Longest wait for the sync to finish.
    pub limit: Duration,
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct ScaleReport {
    pub seed_secs: f64,
    pub sync_secs: f64,
    pub jms_calls: usize,
    pub peak_rss_kb: u64,
    pub rss_before_kb: u64,
    pub rss_after_kb: u64,
    pub relations_seeded: usize,
    pub done_message: String,
    pub who_has_host: String,
    pub who_has_user: String,
    /// Event acknowledgements timed while the sync ran.
    pub probe: AckProbe,
}

/// DingTalk event pushes sent to the bot while `/sync` runs (a `user_leave_org` for a user with
/// no orders every 20 ms, each a new event), timed from request to the encrypted `success`: how
/// long DingTalk waits for an acknowledgement while the bot writes a large index.
#[derive(Clone, Debug)]
pub struct AckProbe {
    /// Acknowledgement times, microseconds (as `loadgen` records its latencies).
    pub latency_us: hdrhistogram::Histogram<u64>,
    /// Pushes not acknowledged with a valid `success`.
    pub failed: usize,
    /// The slowest acknowledgement of each 5 s of the sync, milliseconds (where in the sync the
    /// tail is: the walk of JumpServer's lists, then the commit).
    pub worst_per_5s: Vec<f64>,
}

impl AckProbe {
    /// The `q`-quantile (0 ≤ q ≤ 1) of the acknowledgement times in milliseconds, if any were
    /// measured.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        (!self.latency_us.is_empty()).then(|| self.latency_us.value_at_quantile(q) as f64 / 1e3)
    }
}

async fn probe_acks(dt: &SimDingTalk, stop: &AtomicBool) -> AckProbe {
    let mut p = AckProbe {
        // Up to an hour, three significant digits.
        latency_us: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .expect("constant histogram bounds are valid"),
        failed: 0,
        worst_per_5s: Vec::new(),
    };
    let mut n = 0u64;
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let event = serde_json::json!({
            "EventType": "user_leave_org",
            "UserId": [format!("scale-probe-{n}")],
            "eventId": format!("scale-probe-{n}"),
        });
        let t = Instant::now();
        match dt.push_event(&event).await {
            Ok(_) => {
                let took = t.elapsed();
                p.latency_us
                    .saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
                let slot = (t - start).as_secs() as usize / 5;
                if p.worst_per_5s.len() <= slot {
                    p.worst_per_5s.resize(slot + 1, 0.0);
                }
                p.worst_per_5s[slot] = p.worst_per_5s[slot].max(took.as_secs_f64() * 1e3);
            }
            Err(_) => p.failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p
}

/// The admin's sync result message, once the bot sends it.
async fn wait_for_sync(
    dt: &SimDingTalk,
    admin: &DingUserId,
    started: Instant,
    limit: Duration,
    bot: &mut crate::fault::bot::BotProcess,
    log: &std::path::Path,
) -> Result<String, String> {
    let done = "同步完成";
    let failed = "同步失败";
    loop {
        let texts: Vec<String> = dt
            .messages_to(admin)
            .into_iter()
            .map(|m| m.param.to_string())
            .collect();
        if let Some(t) = texts
            .iter()
            .find(|t| t.contains(done) || t.contains(failed))
        {
            return Ok(t.clone());
        }
        if started.elapsed() > limit || bot.exited().is_some() {
            return Err(format!(
                "no sync result after {:.0} s:\n{}",
                started.elapsed().as_secs_f64(),
                log_tail(log, 20)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `VmHWM` (peak) and `VmRSS` (now) of a process, in kB.
fn rss(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

pub async fn run(o: ScaleOptions) -> Result<ScaleReport, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let t0 = Instant::now();
    let jms = SimJumpServer::start(SimJmsOptions::new(Arc::new(SystemClock)))
        .await
        .map_err(|e| err(&e))?;
    let seeded = jms.seed_scale(o.spec);
    let seed_secs = t0.elapsed().as_secs_f64();
    let dt = SimDingTalk::start(SimDingTalkOptions::default())
        .await
        .map_err(|e| err(&e))?;
    crate::demo::add_directory(&dt);
    let port = free_port(&mut StdRng::from_os_rng()).map_err(|e| err(&e))?;
    let bot_url = format!("http://127.0.0.1:{port}");
    dt.set_bot_base_url(&bot_url);
    std::fs::create_dir_all(&o.dir).map_err(|e| err(&e))?;
    let mut doc = bot_config_doc(&dt, &jms, port, &o.dir.join("data"), Approval::Card);
    doc["jumpserver"]["sync_requests_per_minute"] = o.sync_requests_per_minute.into();
    doc["storage"]["cache_capacity_mb"] = o.cache_capacity_mb.into();
    let config = o.dir.join("accessbot.toml");
    std::fs::write(&config, toml::to_string(&doc).map_err(|e| err(&e))?).map_err(|e| err(&e))?;
    let log = o.dir.join("bot.log");
    let cmd = BotCommand {
        bin: o.bin.clone(),
        config,
        log: log.clone(),
    };
    let mut bot = cmd.spawn(1).map_err(|e| err(&e))?;
    let http = reqwest::Client::new();
    if !wait_ready(&http, &bot_url, Duration::from_secs(30)).await {
        return Err(format!("the bot did not start:\n{}", log_tail(&log, 20)));
    }
    let pid = bot.pid;
    let rss_before_kb = rss(pid).map_or(0, |r| r.1);
    let admin = DingUserId::new(ZHAOLIU);
    jms.reset_counts();
    let say = |text: &str| {
        let m = dt.prepare_message(&admin, None, text).map_err(|e| err(&e));
        let dt = &dt;
        async move { dt.deliver(&m?).await.map_err(|e| err(&e)) }
    };
    let started = Instant::now();
    let r = say("/sync").await?;
    if r.status != 200 {
        return Err(format!("/sync refused: HTTP {} {}", r.status, r.body));
    }
    let stop = AtomicBool::new(false);
    let wait = async {
        let r = wait_for_sync(&dt, &admin, started, o.limit, &mut bot, &log).await;
        stop.store(true, Ordering::Relaxed);
        r
    };
    let (probe, done_message) = tokio::join!(probe_acks(&dt, &stop), wait);
    let done_message = done_message?;
    let sync_secs = started.elapsed().as_secs_f64();
    let jms_calls = jms.total_calls();
    // Settle: sled's flusher and the allocator give memory back within a few seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (peak_rss_kb, rss_after_kb) = rss(pid).unwrap_or((0, 0));
    let ask = |q: String| {
        let dt = &dt;
        let admin = &admin;
        async move {
            let m = dt.prepare_message(admin, None, &q).map_err(|e| err(&e))?;
            dt.deliver(&m).await.map_err(|e| err(&e))?;
            // The answer goes to the message's session webhook, after the acknowledgement.
            for _ in 0..1000 {
                if let Some(v) = dt.webhook_messages(&m.msg_id).first() {
                    return Ok::<String, String>(v.to_string());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(format!("no answer to {q}"))
        }
    };
    let who_has_host = ask(format!(
        "/who-has {}",
        seeded.addresses[seeded.addresses.len() / 2]
    ))
    .await
    .unwrap_or_else(|e| e);
    let who_has_user = ask(format!("/who-has {}", seeded.usernames[7]))
        .await
        .unwrap_or_else(|e| e);
    let _ = bot.kill().await;
    Ok(ScaleReport {
        seed_secs,
        sync_secs,
        jms_calls,
        peak_rss_kb,
        rss_before_kb,
        rss_after_kb,
        relations_seeded: seeded.relations,
        done_message,
        who_has_host,
        who_has_user,
        probe,
    })
}
