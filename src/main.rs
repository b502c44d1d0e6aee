//! The `accessbot` command line: serve, demo, check-config, doctor, healthcheck, audit (verify,
//! export), config example; and,
//! hidden from help because operators have no use for it, `fault` (the SIGKILL fault script's
//! driver).
//!
//! Longer than 600 lines on purpose: one clap enum and one short function per subcommand, so the
//! whole command line reads in one place.
use accessbot::config::{self, Sources};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// jemalloc instead of glibc malloc: a large `/sync` writes hundreds of MB through sled, and
/// glibc kept that peak resident afterwards (fragmented arenas, docs/benchmarks.md); jemalloc
/// returns freed pages to the OS on its own.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at start: a background thread purges freed pages (dirty after
/// 1 s, then straight back to the OS, no "muzzy" stage), so memory a sync used is returned
/// within seconds even while the bot is idle (without the thread, purging only happens on
/// later allocations).
///
/// Per-thread caches are off by default and turned on for the runtime's threads only
/// (`runtime`): sled's seven `sled-io` threads never exit, free much of what a `/sync` wrote,
/// and an idle thread's cache is never trimmed, so with caches on everywhere ~45 MB stayed
/// resident after a large sync; the event path, on the runtime's threads, keeps its cache.
///
/// One arena instead of four per core: a sync's pages (a JSON response, its tree, the rows, sled's
/// batches) are allocated on whichever thread runs that step and freed on another, and with
/// several arenas each kept its own share of that churn: the peak of the 50k-host `/sync` went
/// from 126–153 MB (median ~137, nine runs) to 110–140 MB (median ~117, seven runs), sync time
/// unchanged.
/// The event path's allocations mostly stay in the thread caches, so the one arena's lock is
/// rarely taken (no change in its CPU per request, docs/benchmarks.md).
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 83] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,tcache:false,narenas:1\0";

/// Turns jemalloc's cache on for the calling thread (off by default, `malloc_conf`).
fn thread_cache_on() {
    let on = true;
    // SAFETY: `thread.tcache.enabled` is a bool option of the calling thread; the name is
    // NUL-terminated and the new value points at a live bool of the size given.
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"thread.tcache.enabled".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            (&on as *const bool).cast_mut().cast(),
            std::mem::size_of::<bool>(),
        )
    };
    if rc != 0 {
        tracing::debug!(rc, "jemalloc thread cache not enabled");
    }
}

/// The multi-threaded runtime the bot serves on, its threads with jemalloc's cache on — and the
/// calling thread's, which runs what `block_on` is given (the accept loop, for `serve`).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    thread_cache_on();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(thread_cache_on)
        .build()
}

#[derive(Parser)]
#[command(
    name = "accessbot",
    version,
    about = "JumpServer access through a DingTalk bot"
)]
struct Cli {
    /// Log format: human-readable lines or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bot: the HTTP endpoints DingTalk calls, and the background workers.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Play a checked scenario against simulated DingTalk and JumpServer on loopback (no
    /// credentials, no network): chat request, card approval, grant, OA refusal, forged callback.
    /// Prints the access console's address with a one-click sandbox login per user.
    Demo {
        /// Keep the bot and the simulators running after the scenario (until Ctrl-C), so the
        /// console can be opened in a browser (scripts/browser-test.sh).
        #[arg(long)]
        stay: bool,
    },
    /// Check every credential and right against the real DingTalk and JumpServer: a checklist
    /// with, for each failure, the console setting to change. Exit 1 when a check fails.
    Doctor {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file (with environment overrides); print every problem.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Ask the running bot, on its configured listen address, whether it is ready: exit 0 when
    /// `/readyz` answers 200 (on a build without `/readyz`, when `/healthz` does), 1 otherwise.
    /// For container HEALTHCHECKs and service monitors.
    Healthcheck {
        #[arg(long, short)]
        config: PathBuf,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// The audit trail: check its hash chain, or export it for an auditor. Reads the data
    /// directory directly, so the bot must be stopped (sled locks the directory), or point it
    /// at a copy.
    Audit {
        #[command(subcommand)]
        what: AuditCommand,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        what: ConfigCommand,
    },
    /// Fault injection: runs this binary as the bot (`serve`) against simulated DingTalk and
    /// JumpServer held by this process, kills it with SIGKILL at random moments while requests
    /// are made and decided, restarts it, and checks one permission per approved order and none
    /// lost. Exit 1 on any violation. See scripts/fault.sh and docs/reliability.md.
    #[cfg(feature = "sandbox")]
    #[command(hide = true)]
    Fault(FaultArgs),
    /// Scale run: seeds the simulated JumpServer with a large org, runs this binary as the bot,
    /// times an admin's /sync, counts JumpServer calls and reports the bot's RSS. See
    /// scripts/scale.sh and docs/benchmarks.md.
    #[cfg(feature = "sandbox")]
    #[command(hide = true)]
    Scale(ScaleArgs),
    /// Load-test helpers for scripts/load.sh: signed payload files, the simulators a bot under
    /// load talks to, the bare axum ceiling server. See docs/benchmarks.md.
    #[cfg(feature = "sandbox")]
    #[command(hide = true)]
    Loadgen {
        #[command(subcommand)]
        what: LoadgenCommand,
    },
}

#[cfg(feature = "sandbox")]
#[derive(Subcommand)]
enum LoadgenCommand {
    /// Writes COUNT validly signed deliveries for the bot configured in CONFIG, stamped now
    /// (generate right before the run: event pushes are fresh for an hour).
    Payloads {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, value_enum)]
        kind: LoadKind,
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Starts simulated DingTalk and JumpServer, writes a bot config for PORT and DATA to
    /// CONFIG, prints `ready`, and runs until killed.
    Sims {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        config: PathBuf,
    },
    /// The bare axum ceiling: reads each body, answers 200, on the bot's connection layer and
    /// default `[server]` limits, until killed.
    Ceiling {
        #[arg(long, default_value = "127.0.0.1:8099")]
        listen: String,
    },
    /// The protocol floor: the ceiling plus an event push's signature check, decryption,
    /// parsing and encrypted reply with the keys of CONFIG — no dedupe, dispatch or storage.
    Floor {
        #[arg(long, default_value = "127.0.0.1:8099")]
        listen: String,
        #[arg(long)]
        config: PathBuf,
    },
    /// Open-loop load: sends the PAYLOADS file's requests to URL's host at RATE per second for
    /// DURATION seconds, each at its scheduled time whether or not earlier ones were answered,
    /// latency counted from the scheduled time (as wrk2 -R). Prints wrk2's --latency report.
    Open {
        /// Scheme, host and port to send to; the path of each request comes from the file.
        #[arg(long)]
        url: String,
        /// Written by `loadgen payloads` (the format scripts/load/replay.lua reads).
        #[arg(long)]
        payloads: PathBuf,
        /// Requests per second.
        #[arg(long)]
        rate: u32,
        /// Seconds.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Keep-alive connections opened before the clock starts.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Requests in flight at most (default: CONNECTIONS, as wrk2 with -c); a scheduled
        /// request past it waits for a slot, and the wait counts in its latency.
        #[arg(long)]
        max_in_flight: Option<usize>,
        /// Seconds after its scheduled time a request counts as timed out.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
}

#[cfg(feature = "sandbox")]
#[derive(Clone, Copy, ValueEnum)]
enum LoadKind {
    Events,
    Robot,
    Repeat,
}

#[cfg(feature = "sandbox")]
#[derive(clap::Args)]
struct ScaleArgs {
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    #[arg(long, default_value_t = 50_000)]
    hosts: usize,
    #[arg(long, default_value_t = 10_000)]
    permissions: usize,
    /// Relation rows over the four tables.
    #[arg(long, default_value_t = 200_000)]
    relations: usize,
    /// The bot's `[jumpserver] sync_requests_per_minute` (0 = unpaced).
    #[arg(long, default_value_t = 0)]
    sync_requests_per_minute: u32,
    /// The bot's `[storage] cache_capacity_mb`.
    #[arg(long, default_value_t = accessbot::store::DEFAULT_CACHE_BYTES >> 20)]
    cache_capacity_mb: u64,
    /// Working directory (config, data, log). Default: a new temp dir, removed afterwards.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Longest wait for the sync (seconds).
    #[arg(long, default_value_t = 900)]
    limit_secs: u64,
}

#[cfg(feature = "sandbox")]
#[derive(clap::Args)]
struct FaultArgs {
    /// Requests to make (each is approved or rejected).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=64_000))]
    orders: u32,
    /// SIGKILLs to deliver, each followed by a restart on the same data directory.
    #[arg(long, default_value_t = 25)]
    kills: u32,
    /// Seed of every random choice (the plan, the pauses, the kill schedule); printed with the
    /// report so the schedule can be replayed. Default: a fresh one.
    #[arg(long)]
    seed: Option<u64>,
    /// How approvers decide: approval cards (taps and typed /approve) or DingTalk OA instances.
    #[arg(long, value_enum, default_value_t = FaultApproval::Card)]
    approval: FaultApproval,
    /// Working directory for the bot's config, data and log; must be new or empty. Default: a
    /// new directory under the system temp dir, removed after a passing run.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A kill comes at a uniformly random moment between these after each (re)start (ms).
    #[arg(long, default_value_t = 20)]
    min_uptime_ms: u64,
    #[arg(long, default_value_t = 1200)]
    max_uptime_ms: u64,
    /// The bot stays down up to this long after each kill (ms).
    #[arg(long, default_value_t = 300)]
    max_downtime_ms: u64,
    /// Share of requests the approver rejects (percent).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=100))]
    reject_percent: u32,
    /// Longest wait for any delivery to be acknowledged and for the end state (seconds).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    settle_secs: u64,
    /// Only the report, not a line per kill.
    #[arg(long)]
    quiet: bool,
}

#[cfg(feature = "sandbox")]
#[derive(Clone, Copy, ValueEnum)]
enum FaultApproval {
    Card,
    Oa,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain: print OK with the record count and head hash, or each place it
    /// breaks (sequence number, time, order; edited, deleted or reordered) and exit 1.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write the records (oldest first) as JSON lines or CSV on stdout; columns are listed in
    /// docs/operations.md ("Audit").
    Export {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// From this date (2026-11-01), time (2026-11-01T09:00, or with an offset) or this long
        /// ago (7d, 24h).
        #[arg(long)]
        since: Option<String>,
        /// Up to (a bare date: to the end of that day).
        #[arg(long)]
        until: Option<String>,
        /// Only this order (R261122-007).
        #[arg(long)]
        order: Option<String>,
        /// Only records about this person: DingTalk userid or JumpServer username.
        #[arg(long)]
        user: Option<String>,
        /// Only records about this host (address or name as requested or granted) or system.
        #[arg(long)]
        host: Option<String>,
    },
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct StoreArgs {
    /// The bot's data directory ([storage] path); times shown in UTC.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The bot's configuration: its [storage] path, times in its [chat] timezone.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Jsonl,
    Csv,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the commented example configuration (also config/accessbot.example.toml).
    Example,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.log_format;
    // The demo prints a conversation on stdout; the bot's own info logs would drown it.
    let default_level = match cli.command {
        // The doctor prints a checklist on stdout; the clients' info lines would interleave.
        Command::Demo { .. } | Command::Doctor { .. } => "warn",
        #[cfg(feature = "sandbox")]
        Command::Fault(_) | Command::Scale(_) | Command::Loadgen { .. } => "warn",
        _ => "info",
    };
    init_logging(format, default_level);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // Once, in the chosen format: a JSON log stream stays one object per line.
            match format {
                LogFormat::Json => tracing::error!("{e:#}"),
                LogFormat::Human => eprintln!("accessbot: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        #[cfg(feature = "sandbox")]
        Command::Demo { stay } => Ok(accessbot::demo::main_entry(stay)),
        // Kept in the command list so `demo` answers with the reason instead of "unrecognized".
        #[cfg(not(feature = "sandbox"))]
        Command::Demo { .. } => {
            eprintln!(
                "accessbot demo: this build has no simulated DingTalk and JumpServer (built with \
                 --no-default-features); build with the default `sandbox` feature to run the demo"
            );
            Ok(ExitCode::FAILURE)
        }
        #[cfg(feature = "sandbox")]
        Command::Fault(args) => fault(args),
        #[cfg(feature = "sandbox")]
        Command::Scale(args) => scale(args),
        #[cfg(feature = "sandbox")]
        Command::Loadgen { what } => loadgen(what),
        Command::Config {
            what: ConfigCommand::Example,
        } => {
            print!("{}", config::EXAMPLE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { what } => audit(what),
        Command::CheckConfig { config: path } => {
            match config::load(&Sources::from_process(Some(&path))) {
                Ok((_, warnings)) if warnings.is_empty() => {
                    println!("{}: ok", path.display());
                    Ok(ExitCode::SUCCESS)
                }
                // Warnings (unknown keys) fail the check: a misspelt key silently keeps its
                // default, which is exactly what a check should catch.
                Ok((_, problems)) | Err(problems) => {
                    for p in &problems {
                        println!("{p}");
                    }
                    println!("{}: {} problem(s)", path.display(), problems.len());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Doctor { config: path } => {
            let config = match config::load(&Sources::from_process(Some(&path))) {
                Ok((config, _)) => config,
                Err(problems) => {
                    for p in &problems {
                        println!("{p}");
                    }
                    println!(
                        "✗ config: {} problem(s); fix them first (accessbot check-config)",
                        problems.len()
                    );
                    return Ok(ExitCode::FAILURE);
                }
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("while starting the runtime")?;
            let report = rt.block_on(accessbot::doctor::run(&config));
            print!("{report}");
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Healthcheck {
            config: path,
            timeout_ms,
        } => {
            // The same layers as `serve` (file, ACCESSBOT_* variables), so the address asked is
            // the one the bot listens on.
            let listen = match config::load(&Sources::from_process(Some(&path))) {
                Ok((config, _)) => config.server.listen,
                Err(problems) => {
                    let errors = problems.iter().filter(|p| !p.warning_only).count();
                    println!(
                        "unhealthy: {errors} configuration problem(s); see accessbot check-config"
                    );
                    return Ok(ExitCode::FAILURE);
                }
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("while starting the runtime")?;
            Ok(rt.block_on(healthcheck(&listen, Duration::from_millis(timeout_ms))))
        }
        Command::Serve { config: path } => {
            let config = match config::load(&Sources::from_process(Some(&path))) {
                Ok((config, warnings)) => {
                    for w in warnings {
                        tracing::warn!(key = %w.key, "{}", w.message);
                    }
                    config
                }
                Err(problems) => {
                    for p in &problems {
                        if p.warning_only {
                            tracing::warn!(key = %p.key, "{}", p.message);
                        } else {
                            tracing::error!(key = %p.key, "{}", p.message);
                        }
                    }
                    anyhow::bail!("{} configuration problem(s)", problems.len());
                }
            };
            // The one line an operator reads first: what runs, where, from which file.
            tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                mode = ?config.dingtalk.mode,
                approval = ?config.approval.mode,
                listen = %config.server.listen,
                store = %config.storage.path.display(),
                config = %path.display(),
                jumpserver = %config.jumpserver.url,
                "accessbot starting"
            );
            let rt = runtime().context("while starting the runtime")?;
            rt.block_on(accessbot::app::serve(config))
                .context("while serving")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `accessbot healthcheck`: one line on stdout (container runtimes keep it with the health
/// status) and the exit code.
async fn healthcheck(listen: &str, timeout: Duration) -> ExitCode {
    let Ok(mut addr) = listen.parse::<SocketAddr>() else {
        println!("unhealthy: server.listen `{listen}` is not an address");
        return ExitCode::FAILURE;
    };
    // A wildcard bind (0.0.0.0, [::]) is reached on loopback.
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    // No proxy: an HTTP(S)_PROXY in the environment must not carry a loopback request away.
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            println!("unhealthy: cannot build an HTTP client: {e}");
            return ExitCode::FAILURE;
        }
    };
    for path in ["/readyz", "/healthz"] {
        let url = format!("http://{addr}{path}");
        match client.get(&url).send().await {
            Ok(r) if r.status() == reqwest::StatusCode::OK => {
                println!("ok: {url}");
                return ExitCode::SUCCESS;
            }
            // A build without /readyz: that the bot answers is what can be checked.
            Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND && path == "/readyz" => {}
            Ok(r) => {
                let status = r.status();
                let body: String = r
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(500)
                    .collect();
                println!("unhealthy: {url} answered {status}: {body}");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                // reqwest's own words are "error sending request"; the cause is in the chain.
                let mut why = vec![e.to_string()];
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    why.push(s.to_string());
                    source = s.source();
                }
                println!("unhealthy: {url}: {}", why.join(": "));
                return ExitCode::FAILURE;
            }
        }
    }
    println!("unhealthy: no /readyz and no /healthz on {addr}");
    ExitCode::FAILURE
}

#[cfg(feature = "sandbox")]
fn scale(a: ScaleArgs) -> anyhow::Result<ExitCode> {
    use accessbot::sandbox::jumpserver::scale::ScaleSpec;
    use accessbot::scale::{run, ScaleOptions};
    let bin = std::env::current_exe().context("while finding this binary")?;
    let temp = a.dir.is_none();
    let dir = a.dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("accessbot-scale-{}", std::process::id()))
    });
    let spec = ScaleSpec {
        users: a.users,
        hosts: a.hosts,
        permissions: a.permissions,
        relations: a.relations,
        ..ScaleSpec::LARGE
    };
    let o = ScaleOptions {
        bin,
        dir: dir.clone(),
        spec,
        sync_requests_per_minute: a.sync_requests_per_minute,
        cache_capacity_mb: a.cache_capacity_mb,
        limit: std::time::Duration::from_secs(a.limit_secs),
    };
    let rt = runtime().context("while starting the runtime")?;
    let r = rt.block_on(run(o));
    if temp {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let r = r.map_err(|e| anyhow::anyhow!(e))?;
    println!(
        "scale: {} users, {} hosts, {} permissions, {} relation rows (seeded in {:.1} s)",
        spec.users, spec.hosts, spec.permissions, r.relations_seeded, r.seed_secs
    );
    println!(
        "sync: {:.1} s wall, {} JumpServer calls",
        r.sync_secs, r.jms_calls
    );
    println!(
        "bot RSS: {:.1} MB before, {:.1} MB peak (VmHWM), {:.1} MB 3 s after",
        r.rss_before_kb as f64 / 1024.0,
        r.peak_rss_kb as f64 / 1024.0,
        r.rss_after_kb as f64 / 1024.0
    );
    let q = |x: f64| {
        r.probe
            .quantile_ms(x)
            .map_or("-".to_owned(), |v| format!("{v:.1}"))
    };
    println!(
        "event acks during the sync: {} pushes, p50 {} ms, p99 {} ms, max {} ms, {} not acknowledged",
        r.probe.latency_us.len() as usize + r.probe.failed,
        q(0.5),
        q(0.99),
        q(1.0),
        r.probe.failed
    );
    let worst: Vec<String> = r
        .probe
        .worst_per_5s
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect();
    println!("slowest ack per 5 s of the sync (ms): {}", worst.join(" "));
    println!("admin was told: {}", r.done_message);
    println!("who-has host: {} chars", r.who_has_host.len());
    println!("who-has user: {} chars", r.who_has_user.len());
    Ok(if r.done_message.contains("同步完成") {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Opens the store an audit command names, with the zone its times are shown in.
fn audit_store(a: &StoreArgs) -> anyhow::Result<(accessbot::store::Store, jiff::tz::TimeZone)> {
    let (path, tz) = match (&a.data_dir, &a.config) {
        (Some(dir), _) => (dir.clone(), jiff::tz::TimeZone::UTC),
        (None, Some(file)) => {
            let (config, _) = config::load(&Sources::from_process(Some(file))).map_err(|p| {
                anyhow::anyhow!(
                    "{}: {} configuration problem(s); see accessbot check-config",
                    file.display(),
                    p.len()
                )
            })?;
            let tz = jiff::tz::TimeZone::get(&config.chat.timezone)
                .with_context(|| format!("chat.timezone `{}`", config.chat.timezone))?;
            (config.storage.path, tz)
        }
        (None, None) => anyhow::bail!("give --data-dir or --config"),
    };
    // Opening creates a directory that is not there; an audit of a typo must not.
    if !path.join("db").exists() && !path.join("conf").exists() {
        anyhow::bail!("{} is not an accessbot data directory", path.display());
    }
    let store = accessbot::store::Store::open(&path)?;
    Ok((store, tz))
}

fn audit(what: AuditCommand) -> anyhow::Result<ExitCode> {
    use accessbot::audit_cli;
    use accessbot::store::audit::Audit;
    match what {
        AuditCommand::Verify { store } => {
            let (store, tz) = audit_store(&store)?;
            let report = Audit::new(&store)?.verify()?;
            let (text, ok) = audit_cli::verify_text(&report, &tz);
            print!("{text}");
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AuditCommand::Export {
            store,
            format,
            since,
            until,
            order,
            user,
            host,
        } => {
            let (store, tz) = audit_store(&store)?;
            let now = jiff::Timestamp::now();
            let when = |s: &Option<String>, end| {
                s.as_deref()
                    .map(|v| audit_cli::parse_when(v, now, &tz, end))
                    .transpose()
                    .map_err(anyhow::Error::msg)
            };
            let q = audit_cli::export_query(
                when(&since, false).context("--since")?,
                when(&until, true).context("--until")?,
                order.as_deref(),
                user.as_deref(),
                host.as_deref(),
            );
            let page = Audit::new(&store)?.query(&q)?;
            let format = match format {
                ExportFormat::Jsonl => audit_cli::Format::Jsonl,
                ExportFormat::Csv => audit_cli::Format::Csv,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            audit_cli::export(&page.records, format, &tz, &mut out).map_err(anyhow::Error::msg)?;
            std::io::Write::flush(&mut out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(feature = "sandbox")]
fn loadgen(what: LoadgenCommand) -> anyhow::Result<ExitCode> {
    use accessbot::loadgen::{self, Kind};
    let rt = runtime().context("while starting the runtime")?;
    match what {
        LoadgenCommand::Payloads {
            config: path,
            kind,
            count,
            out,
        } => {
            let (config, _) = config::load(&Sources::from_process(Some(&path))).map_err(|p| {
                anyhow::anyhow!("{}: {} configuration problem(s)", path.display(), p.len())
            })?;
            let kind = match kind {
                LoadKind::Events => Kind::Events,
                LoadKind::Robot => Kind::Robot,
                LoadKind::Repeat => Kind::Repeat,
            };
            let now = jiff::Timestamp::now().as_millisecond();
            let run = format!("{:x}", rand::random::<u32>());
            let reqs = loadgen::generate(&config.dingtalk, kind, count, now, &run)
                .context("while building the callback crypto")?;
            let file = std::fs::File::create(&out)
                .with_context(|| format!("while creating {}", out.display()))?;
            let mut w = std::io::BufWriter::new(file);
            loadgen::write(&reqs, &mut w).context("while writing payloads")?;
            std::io::Write::flush(&mut w).context("while writing payloads")?;
            println!("{} requests written to {}", reqs.len(), out.display());
            Ok(ExitCode::SUCCESS)
        }
        LoadgenCommand::Sims {
            port,
            data,
            config: path,
        } => rt.block_on(async {
            let _sims = loadgen::start_sims(port, &data, &path)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            println!("ready");
            let _ = tokio::signal::ctrl_c().await;
            Ok(ExitCode::SUCCESS)
        }),
        LoadgenCommand::Ceiling { listen } => rt.block_on(async {
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("while binding {listen}"))?;
            let limits = accessbot::listen::server::ConnLimits::from_config(
                &config::Config::default().server,
            );
            println!("ready");
            loadgen::serve_ceiling(listener, limits, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await;
            Ok(ExitCode::SUCCESS)
        }),
        LoadgenCommand::Floor {
            listen,
            config: path,
        } => {
            let (config, _) = config::load(&Sources::from_process(Some(&path))).map_err(|p| {
                anyhow::anyhow!("{}: {} configuration problem(s)", path.display(), p.len())
            })?;
            let crypto = config
                .dingtalk
                .callback_crypto()
                .map_err(|e| anyhow::anyhow!("dingtalk callback keys: {e}"))?;
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("while binding {listen}"))?;
                println!("ready");
                let limits = accessbot::listen::server::ConnLimits::from_config(&config.server);
                loadgen::serve_floor(listener, limits, crypto, async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await;
                Ok(ExitCode::SUCCESS)
            })
        }
        LoadgenCommand::Open {
            url,
            payloads,
            rate,
            duration,
            connections,
            max_in_flight,
            timeout,
        } => {
            let text = std::fs::read_to_string(&payloads)
                .with_context(|| format!("while reading {}", payloads.display()))?;
            let reqs =
                loadgen::read(&text).map_err(|e| anyhow::anyhow!("{}: {e}", payloads.display()))?;
            drop(text);
            let o = loadgen::OpenOptions {
                url,
                rate,
                duration: std::time::Duration::from_secs(duration),
                connections,
                max_in_flight: max_in_flight.unwrap_or(connections),
                timeout: std::time::Duration::from_secs(timeout),
            };
            let report = rt
                .block_on(loadgen::open_loop(&reqs, &o))
                .map_err(anyhow::Error::msg)?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            report.write_wrk2(&o, &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(feature = "sandbox")]
fn fault(a: FaultArgs) -> anyhow::Result<ExitCode> {
    use accessbot::fault::{self, Approval, FaultOptions};
    use std::time::Duration;
    let seed = a.seed.unwrap_or_else(rand::random);
    // The bot under test is this very binary, so what is killed is what was built.
    let bin = std::env::current_exe().context("while finding this binary")?;
    let temp = a.dir.is_none();
    let dir = a.dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("accessbot-fault-{seed}-{}", std::process::id()))
    });
    let mut o = FaultOptions::new(bin, dir.clone(), seed);
    o.orders = a.orders as usize;
    o.kills = a.kills as usize;
    o.approval = match a.approval {
        FaultApproval::Card => Approval::Card,
        FaultApproval::Oa => Approval::Oa,
    };
    o.min_uptime = Duration::from_millis(a.min_uptime_ms);
    o.max_uptime = Duration::from_millis(a.max_uptime_ms);
    o.max_downtime = Duration::from_millis(a.max_downtime_ms);
    o.reject_percent = a.reject_percent;
    o.settle = Duration::from_secs(a.settle_secs);
    o.verbose = !a.quiet;
    println!(
        "accessbot fault: seed {seed}, {} requests, {} kills, approval {} (replay: --seed {seed})",
        o.orders, o.kills, o.approval
    );
    let rt = runtime().context("while starting the runtime")?;
    let report = rt.block_on(fault::run(o))?;
    print!("{report}");
    // Nothing to look at after a pass; a failing run's directory is kept for its log.
    if report.passed() && temp {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("  bot config, data and log: {}", dir.display());
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn init_logging(format: LogFormat, level: &str) {
    let user = std::env::var(accessbot::logging::LOG_ENV).ok();
    let (filter, problem) = accessbot::logging::filter(user.as_deref(), level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    // Said once logging works, so it lands in the chosen format; the bot still starts.
    if let Some(why) = problem {
        tracing::warn!("{why}");
    }
}
