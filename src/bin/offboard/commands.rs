//! The commands: each reads the configuration's store and engine, acts, and prints a table
//! or one JSON document.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use offboard::engine::{Hold, VerificationReport, WatchReport};
use offboard::evidence::{Anchor, AnchorStatus};
use offboard::stores::JsonLinesCheckpointSink;
use offboard::stores::report::{Format, RunReport};
use offboard::{
    CheckpointKey, CheckpointSigner, CheckpointVerifier, Confirmation, Engine, Error, Initiator,
    Manager, Person, Plan, Result, RunId, RunQuery, RunRequest, RunState, TaskState,
};
use serde::Serialize;

use crate::app::{self, Backend};
use crate::config::Settings;
use crate::output::{Exit, Out, or_dash, table, when};
use crate::{
    AuditCommand, AuditVerifyArgs, Cli, Command, EvidenceCommand, EvidenceExportArgs,
    EvidenceVerifyArgs, ExecArgs, HoldsCommand, PersonArgs, ReportArgs,
};
use crate::{ReportFormat, RunArgs, SourcesCommand};

/// What every command works with.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub settings: Settings,
    pub backend: Backend,
    pub out: Out,
    pub actor: String,
}

impl Ctx {
    async fn engine(&self, with_sources: bool) -> Result<Engine> {
        app::engine(&self.settings, &self.backend, with_sources).await
    }
}

/// Runs the command line; errors become their exit codes.
pub(crate) async fn main(cli: Cli) -> Exit {
    let out = Out { json: cli.json };
    match run_cli(cli, out).await {
        Ok(exit) => exit,
        Err(e) => out.error(&e),
    }
}

async fn run_cli(cli: Cli, out: Out) -> Result<Exit> {
    // An auditor verifies a bundle with the file and a public key: no configuration, no store.
    if let Command::Evidence(EvidenceCommand::Verify(args)) = &cli.command {
        return evidence_verify(out, args);
    }
    let env = |k: &str| std::env::var(k).ok();
    let settings = Settings::load(&cli.config, &env)?;
    let backend = Backend::open(&settings.store).await?;
    let actor = cli
        .actor
        .clone()
        .or_else(|| settings.actor.clone())
        .unwrap_or_else(|| format!("cli:{}", env("USER").unwrap_or_else(|| "unknown".into())));
    let ctx = Ctx {
        settings,
        backend,
        out,
        actor,
    };
    dispatch(&ctx, cli.command).await
}

async fn dispatch(ctx: &Ctx, command: Command) -> Result<Exit> {
    match command {
        Command::Plan(person) => plan(ctx, &person).await,
        Command::Run(args) => run(ctx, &args).await,
        Command::Confirm {
            run,
            digest,
            role,
            exec,
        } => confirm(ctx, run, digest, role, exec).await,
        Command::Status { run: None } => list(ctx).await,
        Command::Status { run: Some(id) } => status(ctx, id, None).await,
        Command::Watch(args) => crate::watch::watch(ctx, &args).await,
        Command::Verify { run } => verify(ctx, run).await,
        Command::Rollback { run, confirm } => rollback(ctx, run, confirm).await,
        Command::Cancel { run } => {
            ctx.engine(false).await?.cancel(run, &ctx.actor).await?;
            status(ctx, run, None).await
        }
        Command::Report(args) => report(ctx, &args).await,
        Command::Audit(AuditCommand::Verify(args)) => audit_verify(ctx, &args).await,
        Command::Evidence(EvidenceCommand::Export(args)) => evidence_export(ctx, &args).await,
        Command::Evidence(EvidenceCommand::Verify(args)) => evidence_verify(ctx.out, &args),
        Command::Sources(SourcesCommand::Poll) => poll(ctx).await,
        Command::Holds { command } => holds(ctx, command).await,
    }
}

fn person(args: &PersonArgs) -> Result<Person> {
    let email = args.person.trim();
    if !email.contains('@') {
        return Err(Error::invalid_input(format!(
            "`{email}` is not an email address: name the person by their primary email"
        )));
    }
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| email.to_ascii_lowercase());
    let mut p = Person::new(id, email);
    if let Some(n) = &args.name {
        p = p.with_name(n);
    }
    for a in &args.aliases {
        p = p.with_alias(a);
    }
    if let Some(m) = &args.manager {
        p = p.with_manager(Manager {
            id: None,
            email: m.clone(),
        });
    }
    Ok(p)
}

/// Plans; a person no app knows (no account found, none in the inventory) is `NotFound`.
async fn make_plan(ctx: &Ctx, engine: &Engine, args: &PersonArgs) -> Result<Plan> {
    let initiator = Initiator::Admin {
        actor: ctx.actor.clone(),
    };
    let request = RunRequest::new(person(args)?, initiator).with_reason(&args.reason);
    let plan = engine.plan(request).await?;
    if plan.apps.iter().all(|a| a.account.is_none()) {
        return Err(Error::not_found(format!(
            "no app knows {}: no account found, nothing to offboard",
            args.person
        )));
    }
    Ok(plan)
}

/// A plan, as `plan` and `run` print it.
#[derive(Debug, Serialize)]
struct PlanView<'a> {
    person: &'a Person,
    digest: &'a str,
    needs_confirmation: bool,
    apps: &'a [offboard::engine::AppPlan],
    tasks: Vec<PlanTask>,
}

#[derive(Debug, Serialize)]
struct PlanTask {
    n: usize,
    app: String,
    action: String,
    account: Option<String>,
    stage: String,
    critical: bool,
    reversible: bool,
    after: Vec<usize>,
    state: String,
}

impl<'a> PlanView<'a> {
    fn of(plan: &'a Plan) -> Self {
        let index: BTreeMap<_, _> = plan
            .run
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id, i + 1))
            .collect();
        let tasks = plan
            .run
            .tasks
            .iter()
            .map(|t| PlanTask {
                n: index[&t.id],
                app: t.app.to_string(),
                action: t.label(),
                account: t.account.as_ref().map(|a| a.login.clone()),
                stage: t.stage.clone(),
                critical: t.critical,
                reversible: t.reversible,
                after: t
                    .depends_on
                    .iter()
                    .filter_map(|d| index.get(d).copied())
                    .collect(),
                state: t.state.name().to_owned(),
            })
            .collect();
        Self {
            person: &plan.run.person,
            digest: &plan.digest,
            needs_confirmation: plan.has_critical(),
            apps: &plan.apps,
            tasks,
        }
    }

    fn print(&self) {
        match self.person.display_name.as_str() {
            "" => println!("Plan for {}", self.person.email),
            name => println!("Plan for {name} <{}>", self.person.email),
        }
        let mut apps = table(["app", "method", "account", "note"]);
        for a in self.apps {
            let account = a.account.as_ref().map(|x| x.login.clone());
            apps.add_row([
                a.app.to_string(),
                a.method.clone(),
                or_dash(account),
                a.note.clone(),
            ]);
        }
        println!("{apps}");
        let mut t = table([
            "#", "app", "action", "account", "stage", "critical", "after", "state",
        ]);
        for x in &self.tasks {
            let after: Vec<String> = x.after.iter().map(|n| format!("#{n}")).collect();
            t.add_row([
                x.n.to_string(),
                x.app.clone(),
                x.action.clone(),
                or_dash(x.account.clone()),
                x.stage.clone(),
                if x.critical { "CRITICAL" } else { "" }.to_owned(),
                after.join(","),
                x.state.clone(),
            ]);
        }
        println!("{t}");
        println!("digest: {}", self.digest);
    }
}

async fn plan(ctx: &Ctx, args: &PersonArgs) -> Result<Exit> {
    let engine = ctx.engine(false).await?;
    let plan = make_plan(ctx, &engine, args).await?;
    let view = PlanView::of(&plan);
    ctx.out.emit(&view, || {
        view.print();
        if view.needs_confirmation {
            println!(
                "critical actions need a confirmation: offboard run {} --confirm {}",
                args.person, view.digest
            );
        }
    });
    Ok(if plan.has_critical() {
        Exit::NeedsConfirmation
    } else {
        Exit::Ok
    })
}

async fn run(ctx: &Ctx, args: &RunArgs) -> Result<Exit> {
    let engine = ctx.engine(false).await?;
    let plan = make_plan(ctx, &engine, &args.person).await?;
    if plan.has_critical() && args.confirm.is_none() && !args.hold_critical {
        let view = PlanView::of(&plan);
        ctx.out.emit(&view, || {
            view.print();
            eprintln!(
                "not submitted: the plan has critical actions. Confirm them with \
                 `offboard run {} --confirm {}` (or --hold-critical to run the rest)",
                args.person.person, view.digest
            );
        });
        return Ok(Exit::NeedsConfirmation);
    }
    let confirmation = args
        .confirm
        .as_ref()
        .map(|d| Confirmation::new(d.trim(), &ctx.actor));
    let id = engine.submit(plan.clone(), confirmation).await?;
    execute(&engine, id, args.exec).await?;
    status(ctx, id, Some(&plan.digest)).await
}

async fn confirm(
    ctx: &Ctx,
    id: RunId,
    digest: String,
    role: Option<String>,
    exec: ExecArgs,
) -> Result<Exit> {
    let engine = ctx.engine(false).await?;
    let mut confirmation = Confirmation::new(digest.trim(), &ctx.actor);
    if let Some(r) = role {
        confirmation = confirmation.as_role(r);
    }
    engine.confirm(id, confirmation).await?;
    execute(&engine, id, exec).await?;
    status(ctx, id, None).await
}

/// Carries out the run's due tasks until nothing is due now and nothing is in flight or
/// retrying (tasks of later stages, delegations and held tasks wait), or `wait_secs` passed.
async fn execute(engine: &Engine, id: RunId, exec: ExecArgs) -> Result<()> {
    if exec.detach {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(exec.wait_secs);
    loop {
        let claimed = engine.run_due().await?;
        let run = engine.status(id).await?;
        let busy = run.tasks.iter().any(|t| {
            matches!(
                t.state,
                TaskState::Running { .. } | TaskState::Retrying { .. }
            )
        });
        if run.state.is_terminal() || (claimed == 0 && !busy) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A run, as `status <run>`, `run` and `confirm` print it.
#[derive(Debug, Serialize)]
struct RunView {
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    /// What a confirmation of the held tasks quotes, while some are held.
    #[serde(skip_serializing_if = "Option::is_none")]
    confirmation_digest: Option<String>,
    #[serde(flatten)]
    report: RunReport,
}

async fn status(ctx: &Ctx, id: RunId, digest: Option<&str>) -> Result<Exit> {
    let store = ctx.backend.store();
    let report = RunReport::load(store.as_ref(), id).await?;
    let held = report.actions.iter().any(|a| a.state == "held");
    let confirmation_digest = match held {
        true => store.load_run(id).await?.map(|r| r.confirmation_digest()),
        false => None,
    };
    let view = RunView {
        digest: digest.map(str::to_owned),
        confirmation_digest,
        report,
    };
    ctx.out.emit(&view, || print_run(&view));
    Ok(Exit::Ok)
}

fn print_run(view: &RunView) {
    let r = &view.report;
    println!(
        "run {} for {} <{}>: {}",
        r.run,
        r.person,
        r.email,
        state_name(r.state)
    );
    if let Some(d) = &view.digest {
        println!("digest: {d}");
    }
    let mut t = table([
        "app", "action", "account", "stage", "state", "detail", "finished",
    ]);
    for a in &r.actions {
        let detail = a
            .error
            .clone()
            .or_else(|| a.ticket.clone().map(|k| format!("ticket {k}")))
            .or_else(|| a.detail.clone())
            .or_else(|| a.outcome.clone());
        t.add_row([
            a.app.to_string(),
            a.action.clone(),
            or_dash(a.account.clone()),
            a.stage.clone(),
            a.state.clone(),
            or_dash(detail),
            when(a.finished_at),
        ]);
    }
    println!("{t}");
    if let Some(d) = &view.confirmation_digest {
        println!("critical tasks held: offboard confirm {} {d}", r.run);
    }
}

/// A state's name, as JSON spells it.
pub(crate) fn state_name<T: Serialize>(state: T) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn list(ctx: &Ctx) -> Result<Exit> {
    let runs = ctx.backend.store().list_runs(RunQuery::default()).await?;
    let doc = serde_json::json!({ "runs": runs });
    ctx.out.emit(&doc, || {
        let mut t = table(["run", "person", "state", "created", "finished"]);
        for r in &runs {
            t.add_row([
                r.id.to_string(),
                r.person.to_string(),
                state_name(r.state),
                when(Some(r.created_at)),
                when(r.finished_at),
            ]);
        }
        println!("{t}");
    });
    Ok(Exit::Ok)
}

/// `verify`'s document.
#[derive(Debug, Serialize)]
struct VerifyView {
    #[serde(flatten)]
    report: VerificationReport,
    accuracy: f64,
    access_left: bool,
}

async fn verify(ctx: &Ctx, id: RunId) -> Result<Exit> {
    let report = ctx.engine(false).await?.verify(id).await?;
    let access_left = report.apps.iter().any(|a| a.revoked == Some(false));
    let view = VerifyView {
        accuracy: report.accuracy(),
        access_left,
        report,
    };
    ctx.out.emit(&view, || {
        let mut t = table(["app", "revoked", "access left", "note"]);
        for a in &view.report.apps {
            let revoked = match a.revoked {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "not checked",
            };
            t.add_row([
                a.app.to_string(),
                revoked.to_owned(),
                a.remaining.join(", "),
                or_dash(a.error.clone()),
            ]);
        }
        println!("verification of run {}:\n{t}", view.report.run);
        println!("{:.0}% of checked accounts revoked", view.accuracy * 100.0);
    });
    Ok(if access_left {
        Exit::AccessLeft
    } else {
        Exit::Ok
    })
}

async fn rollback(ctx: &Ctx, id: RunId, confirm: Option<String>) -> Result<Exit> {
    let engine = ctx.engine(false).await?;
    let run = engine.status(id).await?;
    let can = run.state.is_terminal() && run.state != RunState::RolledBack;
    if can && run.rollback_needs_confirmation() && confirm.is_none() {
        let digest = run.rollback_digest();
        let doc = serde_json::json!({ "run": id, "needs_confirmation": true, "digest": digest });
        ctx.out.emit(&doc, || {
            eprintln!(
                "the run has critical tasks: confirm its rollback with \
                 `offboard rollback {id} --confirm {digest}`"
            );
        });
        return Ok(Exit::NeedsConfirmation);
    }
    let confirmation = confirm.map(|d| Confirmation::new(d.trim(), &ctx.actor));
    let report = engine.rollback(id, &ctx.actor, confirmation).await?;
    let labels: BTreeMap<_, _> = run.tasks.iter().map(|t| (t.id, t.label())).collect();
    let label = |t| labels.get(t).cloned().unwrap_or_default();
    ctx.out.emit(&report, || {
        let mut t = table(["task", "rollback"]);
        for x in &report.restored {
            t.add_row([label(x), "restored".to_owned()]);
        }
        for (x, e) in &report.failed {
            t.add_row([label(x), format!("FAILED: {}", e.message)]);
        }
        for k in &report.kept {
            t.add_row([
                label(&k.task),
                format!("kept (because {} failed)", label(&k.because)),
            ]);
        }
        println!("rollback of run {id}: {}\n{t}", state_name(report.state));
    });
    Ok(if report.failed.is_empty() {
        Exit::Ok
    } else {
        Exit::Error
    })
}

/// A day (`YYYY-MM-DD`, midnight UTC) or an RFC 3339 time.
fn parse_time(flag: &str, s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            Error::invalid_input(format!(
                "--{flag} {s}: expected YYYY-MM-DD or an RFC 3339 time"
            ))
        })
}

async fn report(ctx: &Ctx, args: &ReportArgs) -> Result<Exit> {
    let format = match args.format {
        ReportFormat::Csv => Format::Csv,
        ReportFormat::Json => Format::Json,
        ReportFormat::Html => Format::Html,
    };
    let (since, until) = (parse_time("from", &args.from)?, parse_time("to", &args.to)?);
    if since >= until {
        return Err(Error::invalid_input("--from must be before --to"));
    }
    let summary = match &args.output {
        Some(path) => {
            let mut f = tokio::fs::File::create(path).await.map_err(|e| {
                Error::invalid_input(format!("cannot write {}: {e}", path.display()))
            })?;
            ctx.backend
                .write_period(since, until, format, &mut f)
                .await?
        }
        None => {
            let mut stdout = tokio::io::stdout();
            ctx.backend
                .write_period(since, until, format, &mut stdout)
                .await?
        }
    };
    eprintln!(
        "{} runs ({} completed, {} with failures, {} open), {} tasks, {} failed",
        summary.runs,
        summary.completed,
        summary.with_failures,
        summary.open,
        summary.tasks,
        summary.failed_tasks
    );
    Ok(Exit::Ok)
}

async fn audit_verify(ctx: &Ctx, args: &AuditVerifyArgs) -> Result<Exit> {
    let v = match &args.checkpoints {
        None => ctx.backend.verify_audit().await?,
        Some(path) => {
            let checkpoints = JsonLinesCheckpointSink::read(path).await?;
            let mut verifier = CheckpointVerifier::new();
            for key in &args.key {
                let text = std::fs::read_to_string(key).map_err(|e| {
                    Error::invalid_input(format!("cannot read {}: {e}", key.display()))
                })?;
                verifier = verifier.with_key(CheckpointKey::from_text(None, &text)?)?;
            }
            ctx.backend
                .verify_audit_against(&checkpoints, &verifier)
                .await?
        }
    };
    let intact = v.is_intact();
    ctx.out.emit(&v, || {
        match &v.problem {
            None => println!("audit trail verifies: {} events", v.verified),
            Some(p) => println!(
                "AUDIT TRAIL DOES NOT VERIFY after {} events: {p}{}",
                v.verified,
                v.column
                    .as_ref()
                    .map(|c| format!(" (column {c})"))
                    .unwrap_or_default()
            ),
        }
        if let Some(c) = &v.checkpoint {
            match &c.problem {
                None => println!(
                    "checkpoints: the chain holds every one (latest seq {})",
                    c.latest
                ),
                Some(p) => println!("CHECKPOINTS DO NOT MATCH: {p}"),
            }
        }
    });
    Ok(if intact { Exit::Ok } else { Exit::Tampered })
}

/// Reads a public key file for a verifier: `FILE` or `KEY_ID=FILE`.
fn public_key(spec: &str) -> Result<CheckpointKey> {
    let (key_id, path) = match spec.split_once('=') {
        Some((id, path)) => (Some(id), path),
        None => (None, spec),
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid_input(format!("cannot read {path}: {e}")))?;
    CheckpointKey::from_text(key_id, &text)
}

async fn evidence_export(ctx: &Ctx, args: &EvidenceExportArgs) -> Result<Exit> {
    let signer = match &args.key_file {
        Some(path) => CheckpointSigner::from_file(path)?,
        None => CheckpointSigner::from_env(&args.key_env)?,
    };
    let signer = match &args.key_id {
        Some(id) => signer.with_key_id(id)?,
        None => signer,
    };
    let checkpoints = match &args.checkpoints {
        Some(path) => JsonLinesCheckpointSink::read(path).await?,
        None => Vec::new(),
    };
    let store = ctx.backend.store();
    let bundle = offboard::build_bundle(store.as_ref(), args.run, &signer, &checkpoints).await?;
    let bytes = bundle.to_bytes()?;
    std::fs::write(&args.out, &bytes).map_err(|e| {
        Error::storage(format!("cannot write {}", args.out.display())).with_source(e)
    })?;
    let doc = serde_json::json!({
        "run": bundle.run,
        "file": args.out,
        "events": bundle.events.len(),
        "links": bundle.links.len(),
        "anchor": match &bundle.anchor {
            Anchor::Anchored { checkpoint } => serde_json::json!({"status": "anchored", "checkpoint_seq": checkpoint.seq}),
            Anchor::NotAnchored { reason, .. } => serde_json::json!({"status": "not_anchored", "reason": reason}),
        },
        "key_id": bundle.key_id,
    });
    ctx.out.emit(&doc, || {
        println!(
            "wrote {}: {} events of run {}, {} links",
            args.out.display(),
            bundle.events.len(),
            bundle.run,
            bundle.links.len()
        );
        match &bundle.anchor {
            Anchor::Anchored { checkpoint } => {
                println!(
                    "anchored to the signed checkpoint at seq {}",
                    checkpoint.seq
                )
            }
            Anchor::NotAnchored { reason, .. } => println!("NOT ANCHORED: {reason}"),
        }
    });
    Ok(Exit::Ok)
}

fn evidence_verify(out: Out, args: &EvidenceVerifyArgs) -> Result<Exit> {
    let mut keys = CheckpointVerifier::new();
    for spec in &args.key {
        keys = keys.with_key(public_key(spec)?)?;
    }
    let bytes = std::fs::read(&args.file)
        .map_err(|e| Error::invalid_input(format!("cannot read {}: {e}", args.file.display())))?;
    match offboard::verify_bundle(&bytes, &keys) {
        Ok(v) => {
            out.emit(&serde_json::json!({ "verified": true, "bundle": v }), || {
                println!(
                    "evidence bundle verifies: run {}, {} events (seq {}..{}), signed by {}",
                    v.run, v.events, v.first_seq, v.last_seq, v.key_id
                );
                match &v.anchor {
                    AnchorStatus::Anchored {
                        checkpoint_seq,
                        key_id,
                    } => println!(
                        "anchored: proven up to the checkpoint at seq {checkpoint_seq} (key {key_id})"
                    ),
                    AnchorStatus::NotAnchored { through_seq } => println!(
                        "NOT ANCHORED: the events are genuine and linked through seq \
                         {through_seq}, but no signed checkpoint covers them"
                    ),
                }
                println!(
                    "run state {:?}; {} confirmations, {} verification passes, {} delegations",
                    v.summary.state,
                    v.summary.confirmations.len(),
                    v.summary.verifications.len(),
                    v.summary.delegations.len()
                );
            });
            Ok(Exit::Ok)
        }
        Err(problem) => {
            out.emit(
                &serde_json::json!({ "verified": false, "problem": problem, "message": problem.to_string() }),
                || println!("EVIDENCE BUNDLE DOES NOT VERIFY: {problem}"),
            );
            Ok(Exit::Tampered)
        }
    }
}

async fn poll(ctx: &Ctx) -> Result<Exit> {
    if ctx.settings.sources.is_empty() {
        return Err(Error::config(
            "sources",
            "no source of truth is configured ([sources.*])",
        ));
    }
    let report: WatchReport = ctx.engine(true).await?.poll_sources().await?;
    ctx.out.emit(&report, || {
        let mut t = table([
            "read",
            "started",
            "suppressed",
            "returned",
            "protected",
            "parked",
            "held",
        ]);
        t.add_row([
            report.records,
            report.started.len(),
            report.suppressed.len(),
            report.returned.len(),
            report.protected.len(),
            report.parked.len(),
            report.held.len(),
        ]);
        println!("{t}");
        for (p, r) in &report.started {
            println!("started run {r} for {p}");
        }
        for (p, d) in &report.needs_confirmation {
            println!("critical actions held for {p}: confirm with digest {d}");
        }
        for h in &report.held {
            println!(
                "HELD: {} people of {} (limit {}): offboard holds release {}",
                h.count, h.source, h.limit, h.source
            );
        }
    });
    let waiting = !report.held.is_empty() || !report.needs_confirmation.is_empty();
    Ok(if waiting {
        Exit::NeedsConfirmation
    } else {
        Exit::Ok
    })
}

async fn holds(ctx: &Ctx, command: Option<HoldsCommand>) -> Result<Exit> {
    let engine = ctx.engine(false).await?;
    let held: Vec<Hold> = match command {
        Some(HoldsCommand::Release { source }) => {
            vec![engine.release_hold(&source, &ctx.actor).await?]
        }
        None | Some(HoldsCommand::List) => {
            let mut all = Vec::new();
            for name in app::source_names(&ctx.settings) {
                all.extend(engine.hold(&name).await?);
            }
            all
        }
    };
    let doc = serde_json::json!({ "holds": held });
    ctx.out.emit(&doc, || {
        let mut t = table([
            "source",
            "people",
            "limit",
            "known",
            "held at",
            "released by",
        ]);
        for h in &held {
            t.add_row([
                h.source.clone(),
                h.count.to_string(),
                h.limit.to_string(),
                or_dash(h.known),
                when(Some(h.held_at)),
                or_dash(h.released_by.clone()),
            ]);
        }
        println!("{t}");
    });
    Ok(Exit::Ok)
}
