//! Shared by the email tests: the SMTP sink's variables, the maildir reader, a fake clock.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use offboard_core::engine::Clock;

pub const TASK_URL: &str = "https://admin.example.test/offboard/tasks";

#[derive(Debug)]
pub struct FakeClock(Mutex<DateTime<Utc>>);

impl FakeClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(
            Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap(),
        )))
    }
    pub fn advance(&self, d: chrono::Duration) {
        *self.0.lock().unwrap() += d;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

pub struct Sink {
    pub host: String,
    pub port: u16,
    pub maildir: std::path::PathBuf,
}

pub fn sink() -> Sink {
    let addr = std::env::var("OFFBOARD_TEST_SMTP").unwrap_or_else(|_| {
        panic!(
            "OFFBOARD_TEST_SMTP is not set: run the tests with ./scripts/test, which starts the \
             SMTP sink (scripts/services/smtp.sh), or start it by hand"
        )
    });
    let maildir = std::env::var("OFFBOARD_TEST_SMTP_MAILDIR").unwrap_or_else(|_| {
        panic!("OFFBOARD_TEST_SMTP_MAILDIR is not set: see scripts/services/smtp.sh")
    });
    let (host, port) = addr
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("OFFBOARD_TEST_SMTP must be host:port, got {addr:?}"));
    Sink {
        host: host.to_string(),
        port: port.parse().expect("OFFBOARD_TEST_SMTP port"),
        maildir: maildir.into(),
    }
}

/// A delivered message: headers (lower-cased names) and the decoded body.
#[derive(Debug)]
pub struct Mail {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Mail {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn link(&self) -> String {
        let start = self
            .body
            .find(TASK_URL)
            .expect("the body carries the task link");
        self.body[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }

    pub fn token(&self) -> String {
        self.link()
            .split_once("?token=")
            .expect("the link carries a token")
            .1
            .to_string()
    }
}

pub fn decode_qp(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                i += 3;
            } else if b.get(i + 1) == Some(&b'\n') {
                i += 2;
            } else if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
            } else {
                out.push(b'=');
                i += 1;
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse(raw: &str) -> Mail {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let cte = headers
        .iter()
        .find(|(k, _)| k == "content-transfer-encoding")
        .map(|(_, v)| v.to_ascii_lowercase());
    let body = match cte.as_deref() {
        Some("quoted-printable") => decode_qp(body),
        Some("base64") => String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(body.split_whitespace().collect::<String>())
                .expect("base64 body"),
        )
        .unwrap(),
        _ => body.to_string(),
    };
    Mail { headers, body }
}

/// Every delivered message to `rcpt`, oldest first.
pub fn mails_to(sink: &Sink, rcpt: &str) -> Vec<Mail> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(dir) = std::fs::read_dir(sink.maildir.join(sub)) else {
            continue;
        };
        for entry in dir.flatten() {
            let raw = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let mail = parse(&raw);
            let to_rcpt = mail.header("x-rcptto").is_some_and(|v| v.contains(rcpt))
                || mail.header("to").is_some_and(|v| v.contains(rcpt));
            if to_rcpt {
                let modified = entry.metadata().and_then(|m| m.modified()).ok();
                out.push((modified, mail));
            }
        }
    }
    out.sort_by_key(|(m, _)| *m);
    out.into_iter().map(|(_, m)| m).collect()
}

/// Waits (briefly) until `n` messages to `rcpt` arrived.
pub async fn wait_for_mails(sink: &Sink, rcpt: &str, n: usize) -> Vec<Mail> {
    for _ in 0..100 {
        let m = mails_to(sink, rcpt);
        if m.len() >= n {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = mails_to(sink, rcpt);
    assert!(
        m.len() >= n,
        "expected {n} messages to {rcpt}, found {}",
        m.len()
    );
    m
}

pub fn unique(name: &str) -> String {
    format!("{name}-{}@example.test", uuid::Uuid::new_v4().simple())
}
