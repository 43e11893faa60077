//! Output: human tables (comfy-table) by default, one JSON document per command with
//! `--json`, and the exit codes.

use std::process::ExitCode;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use offboard::{Error, ErrorKind};
use serde::Serialize;

/// What a command ended with; its number is the process's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 0: done.
    Ok = 0,
    /// 1: an error (configuration, store, connector, bad input).
    Error = 1,
    /// 2: a confirmation is needed (a critical plan run without the right `--confirm`, a
    /// rollback of a run with critical tasks, a held batch or run awaiting a person).
    NeedsConfirmation = 2,
    /// 3: verification found access left.
    AccessLeft = 3,
    /// 4: not found (unknown run, a person no app knows, nothing held).
    NotFound = 4,
    /// 5: the audit trail does not verify (tampered).
    Tampered = 5,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// The exit code of an error, by its kind.
pub(crate) fn exit_of(e: &Error) -> Exit {
    match e.kind() {
        ErrorKind::NotFound => Exit::NotFound,
        ErrorKind::ConfirmationRequired => Exit::NeedsConfirmation,
        ErrorKind::Tampered => Exit::Tampered,
        _ => Exit::Error,
    }
}

/// Where a command writes: tables or JSON.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out {
    /// `--json`.
    pub json: bool,
}

impl Out {
    /// Prints `doc` as one JSON document (with `--json`) or runs `human`.
    pub(crate) fn emit<T: Serialize>(&self, doc: &T, human: impl FnOnce()) {
        if self.json {
            match serde_json::to_string_pretty(doc) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("error: cannot write JSON: {e}"),
            }
        } else {
            human();
        }
    }

    /// Reports an error: `{"error":{"kind":…,"message":…}}` on stdout with `--json`, a line on
    /// stderr otherwise. Returns its exit code.
    pub(crate) fn error(&self, e: &Error) -> Exit {
        let exit = exit_of(e);
        if self.json {
            let doc = serde_json::json!({
                "error": { "kind": e.kind(), "message": e.to_string(), "exit_code": exit as u8 }
            });
            println!("{doc:#}");
        } else {
            eprintln!("error: {e}");
        }
        exit
    }
}

/// A table with `header`, sized to the terminal (or unbounded when piped).
pub(crate) fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    t
}

/// `-` for nothing.
pub(crate) fn or_dash(s: Option<impl ToString>) -> String {
    s.map_or_else(|| "-".to_owned(), |s| s.to_string())
}

/// A time, to the second.
pub(crate) fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    or_dash(t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()))
}
