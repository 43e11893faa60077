//! The connection pool replaces connections the network dropped. A TCP proxy on loopback sits
//! between the connector and the Samba AD DC and cuts every connection on demand.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use offboard_ad::AdConnector;
use offboard_ad::actions::DISABLE;
use offboard_core::{Action, Connector, ExecuteOptions, LookupRequest, Outcome, Person};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Forwards 127.0.0.1:<port> to the DC; `cut()` closes every open connection.
struct Proxy {
    port: u16,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    _accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let registry = conns.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let handle = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                registry.lock().unwrap().push(handle);
            }
        });
        Self {
            port,
            conns,
            _accept: accept,
        }
    }

    fn cut(&self) -> usize {
        let mut conns = self.conns.lock().unwrap();
        let n = conns.len();
        for c in conns.drain(..) {
            c.abort();
        }
        n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_replaced() {
    let env = common::env();
    let upstream = env
        .url
        .trim_start_matches("ldaps://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = Proxy::start(upstream).await;
    let ad = AdConnector::connect(
        common::builder(&env)
            .with_url(format!("ldaps://127.0.0.1:{}", proxy.port))
            .with_pool_size(1)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let mut admin = common::Admin::connect(&env).await;
    let tag = common::random_hex(8);
    let login = format!("ofb{tag}-reconnect@offb.test");
    let (_, guid) = admin
        .create_user(
            &format!("ofb{tag}-reconnect"),
            &format!("r{tag}"),
            &login,
            &[&login],
            &[],
        )
        .await;
    let lookup = LookupRequest::person(Person::new("p", login.as_str()));

    assert!(ad.lookup(&lookup).await.unwrap().is_some());
    assert!(
        proxy.cut() >= 1,
        "the pooled connection went through the proxy"
    );
    // A search on the dead pooled connection is retried once on a fresh one.
    let account = ad
        .lookup(&lookup)
        .await
        .unwrap()
        .expect("found after reconnect");

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The pool notices the closed connection and reconnects before writing.
    let reply = ad
        .execute(&account, &Action::new(DISABLE), &ExecuteOptions::default())
        .await
        .unwrap();
    assert_eq!(reply.outcome, Outcome::Done);
    let entry = admin.by_guid(&guid).await.unwrap();
    assert_eq!(
        common::attr(&entry, "userAccountControl"),
        vec!["514".to_owned()]
    );
    admin.delete_guid(&guid).await;
}
