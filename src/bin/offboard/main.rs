//! `offboard`: the administrator's command line.
//!
//! Plans, runs, watches, verifies and rolls back offboardings on a SQLite file or a
//! PostgreSQL database, with the policy file and the connectors a TOML configuration names
//! (see `config.rs` for its format; secrets come from environment variables it names).
//! Install it with `cargo install --path . --features cli`.
//!
//! Human tables by default; `--json` prints one JSON document per command. Exit codes:
//! 0 ok, 1 error, 2 needs confirmation, 3 access left after verify, 4 not found, 5 audit
//! trail or evidence bundle does not verify.

mod app;
mod commands;
mod config;
mod output;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use offboard::RunId;

const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  error (configuration, store, connector, bad input)
  2  needs confirmation: `plan` of a plan with critical actions; `run` of such a plan without
     the right --confirm (nothing is submitted); `rollback` of a run with critical tasks
     without --confirm; `confirm` with another digest; `sources poll` that held a batch or
     started a run whose critical actions wait for a confirmation
  3  `verify` found access left in some app
  4  not found: an unknown run, a person no app knows, no batch held for a source
  5  `audit verify`: the audit trail does not verify (altered, inserted or missing events);
     `evidence verify`: the bundle does not verify (changed, signed by a key not given, its
     events altered, missing or not linked to its checkpoint, its summary contradicted)";

/// Offboard a departing person from every system, provably.
#[derive(Debug, Parser)]
#[command(name = "offboard", version, after_long_help = EXIT_CODES, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// The configuration file (TOML: store, policy, connectors, sources).
    #[arg(
        long,
        short,
        env = "OFFBOARD_CONFIG",
        global = true,
        default_value = "offboard.toml"
    )]
    config: PathBuf,
    /// Print one JSON document instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Who acts, as the audit trail records it (default: the configuration's `actor`, else
    /// `cli:$USER`).
    #[arg(
        long = "as",
        env = "OFFBOARD_ACTOR",
        global = true,
        value_name = "ACTOR"
    )]
    actor: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Plan a person's offboarding (lookups only, nothing changes): the tasks and the digest a
    /// confirmation of its critical actions quotes.
    Plan(PersonArgs),
    /// Plan and submit a person's offboarding, then carry out what is due now.
    Run(RunArgs),
    /// Confirm the critical tasks a run holds, then carry out what is due now.
    Confirm {
        /// The run.
        run: RunId,
        /// The digest the run's confirmation quotes (`status <run>` shows it).
        digest: String,
        /// The confirmer's role, when the policy's approvals ask for one.
        #[arg(long)]
        role: Option<String>,
        #[command(flatten)]
        exec: ExecArgs,
    },
    /// Every run (newest first), or one run's tasks.
    Status {
        /// The run.
        run: Option<RunId>,
    },
    /// Live progress bars per app of the open runs (or the runs named), until they end.
    Watch(WatchArgs),
    /// Re-read every system the run touched: access left per app (exit 3 when some is left).
    Verify {
        /// The run.
        run: RunId,
    },
    /// Undo a run's reversible actions.
    Rollback {
        /// The run.
        run: RunId,
        /// The rollback digest, for a run with critical tasks (the command prints it).
        #[arg(long)]
        confirm: Option<String>,
    },
    /// Cancel a run: no task starts any more.
    Cancel {
        /// The run.
        run: RunId,
    },
    /// The compliance report of the runs created in [--from, --to).
    Report(ReportArgs),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Evidence bundles: one signed file per run that an auditor verifies offline.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// The sources of truth (HR feed, identity providers).
    #[command(subcommand)]
    Sources(SourcesCommand),
    /// Batches the mass-departure circuit breaker holds, per source.
    Holds {
        #[command(subcommand)]
        command: Option<HoldsCommand>,
    },
}

/// Who leaves.
#[derive(Debug, Args)]
pub(crate) struct PersonArgs {
    /// The person's primary email address.
    pub person: String,
    /// The person's stable id (default: the email address, lower case).
    #[arg(long)]
    pub id: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Another address or login the person is known by (repeatable).
    #[arg(long = "alias")]
    pub aliases: Vec<String>,
    /// The manager's email (receives data and forwarded mail).
    #[arg(long)]
    pub manager: Option<String>,
    /// Why (recorded in the run).
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// `run`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub person: PersonArgs,
    /// The plan's digest (`plan` prints it): confirms its critical actions.
    #[arg(long)]
    pub confirm: Option<String>,
    /// Submit a critical plan without a confirmation: its critical actions are held (until
    /// `confirm`) while everything else runs.
    #[arg(long, conflicts_with = "confirm")]
    pub hold_critical: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// How long a command carries out due tasks.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct ExecArgs {
    /// Only submit: leave the tasks to a worker.
    #[arg(long)]
    pub detach: bool,
    /// Stop carrying out tasks after this many seconds (they go on with the next command).
    #[arg(long, default_value_t = 300)]
    pub wait_secs: u64,
}

/// `watch`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// The runs (default: every open run).
    pub runs: Vec<RunId>,
    /// Draw once and stop.
    #[arg(long)]
    pub once: bool,
    /// Stop after this many seconds even if runs are open.
    #[arg(long)]
    pub timeout_secs: Option<u64>,
    /// How often the store is read, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub interval_ms: u64,
}

/// A report's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// One row per task.
    Csv,
    /// One document: the runs and a summary.
    Json,
    /// For auditors, in a browser or printed: replayed from the audit chain, with the
    /// chain's status and charts.
    Html,
}

/// `report`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Runs created at or after (YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    pub from: String,
    /// Runs created before (YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    pub to: String,
    /// The format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Csv)]
    pub format: ReportFormat,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// `audit` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Verify the audit trail's hash chain (exit 5 when it does not verify), and, given
    /// signed checkpoints and their public keys, that the chain still holds every checkpoint
    /// (a deleted tail or a re-sealed chain).
    Verify(AuditVerifyArgs),
}

/// `audit verify`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct AuditVerifyArgs {
    /// The engine's signed checkpoints (the JSON-lines file its checkpoint sink writes).
    #[arg(long, requires = "key")]
    pub checkpoints: Option<PathBuf>,
    /// A public key the checkpoints are signed with (PEM or base64; repeat for rotated keys).
    #[arg(long, requires = "checkpoints")]
    pub key: Vec<PathBuf>,
}

/// `evidence` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum EvidenceCommand {
    /// Write a run's evidence bundle (its events, their links up to a signed checkpoint, the
    /// plan, confirmations, verification and delegations), signed with the evidence key.
    Export(EvidenceExportArgs),
    /// Verify a bundle with nothing but the file and public keys (exit 5 when it does not
    /// verify); needs no configuration or database.
    Verify(EvidenceVerifyArgs),
}

/// `evidence export`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct EvidenceExportArgs {
    /// The run.
    pub run: RunId,
    /// Where to write the bundle.
    #[arg(long, short)]
    pub out: PathBuf,
    /// The engine's signed checkpoints (the JSON-lines file its checkpoint sink writes); the
    /// first at or after the run's last event anchors the bundle. Without: not anchored.
    #[arg(long)]
    pub checkpoints: Option<PathBuf>,
    /// A file holding the signing key (PKCS#8 PEM or a 32-byte seed in base64).
    #[arg(long, conflicts_with = "key_env")]
    pub key_file: Option<PathBuf>,
    /// The environment variable holding the signing key (used when --key-file is not given).
    #[arg(long, default_value = "OFFBOARD_EVIDENCE_KEY")]
    pub key_env: String,
    /// The key id the bundle names (default: derived from the public key).
    #[arg(long)]
    pub key_id: Option<String>,
}

/// `evidence verify`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct EvidenceVerifyArgs {
    /// The bundle.
    pub file: PathBuf,
    /// A public key of the bundle's signer or of its checkpoint's (PEM or base64), as
    /// `FILE` (key id derived from the key) or `KEY_ID=FILE`; repeat for several keys.
    #[arg(long, required = true, value_name = "[KEY_ID=]FILE")]
    pub key: Vec<String>,
}

/// `sources` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum SourcesCommand {
    /// Poll every configured source once: starts the runs of people who left.
    Poll,
}

/// `holds` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum HoldsCommand {
    /// The batch held per configured source (the default).
    List,
    /// Let a source's held batch through on its next poll.
    Release {
        /// The source (`okta`, `google`, `entra`, `hr`).
        source: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    commands::main(cli).await.into()
}
