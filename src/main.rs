//! The `accessbot` command line: serve, demo, check-config, config example.
use accessbot::config::{self, Sources};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

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
    Demo,
    /// Validate a configuration file (with environment overrides); print every problem.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        what: ConfigCommand,
    },
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
        Command::Demo => "warn",
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
        Command::Demo => Ok(accessbot::demo::main_entry()),
        Command::Config {
            what: ConfigCommand::Example,
        } => {
            print!("{}", config::EXAMPLE);
            Ok(ExitCode::SUCCESS)
        }
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
            let rt = tokio::runtime::Runtime::new().context("while starting the runtime")?;
            rt.block_on(accessbot::app::serve(config))
                .context("while serving")?;
            Ok(ExitCode::SUCCESS)
        }
    }
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
