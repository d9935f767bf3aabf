//! `briefing serve`: the one-click unsubscribe endpoint (RFC 8058).

use briefing::audience::token::Keyring;
use briefing::clock::Clock;
use briefing::config::Config;
use briefing::deliver::ledger::{Ledger, Location};
use briefing::unsubscribe::{self, RequestLog, Service, Settings};

use super::output::elog;
use super::{CliError, CliResult, Context, Newsletters, SharedClock, exit};

/// Arguments of `briefing serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (default: serve.listen in the config).
    #[arg(long)]
    listen: Option<String>,
}

/// Runs `briefing serve`: every newsletter's endpoint (each on its own
/// `serve.listen`), or the one `--newsletter` names.
pub fn run(args: ServeArgs, newsletters: &Newsletters<'_>, clock: SharedClock) -> CliResult {
    let each = newsletters.each();
    if args.listen.is_some() && each.len() > 1 {
        return Err(CliError::input(
            "--listen names one address, but this repository has several newsletters; expected --newsletter ID with it",
        ));
    }
    let mut endpoints = Vec::new();
    for config in &each {
        let listen = args
            .listen
            .clone()
            .unwrap_or_else(|| config.serve.listen.clone());
        if let Some((other, _)) = endpoints
            .iter()
            // Port 0 asks the system for a free port each time.
            .find(|(_, e): &&(&str, Endpoint)| e.listen == listen && !listen.ends_with(":0"))
        {
            return Err(CliError::input(format!(
                "newsletters `{other}` and `{}` would both listen on {listen}; expected serve.listen of its own in each newsletter's file, or one `briefing serve --newsletter ID` per newsletter",
                config.id()
            )));
        }
        endpoints.push((config.id(), endpoint(config, listen, &clock)?));
    }
    let several = endpoints.len() > 1;
    let runtime = super::runtime()?;
    runtime.block_on(async move {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut servers = tokio::task::JoinSet::new();
        for (id, e) in endpoints {
            let cannot_listen = format!("cannot listen on {}", e.listen);
            let listener = tokio::net::TcpListener::bind(&e.listen)
                .await
                .context(&cannot_listen)?;
            let addr = listener.local_addr().context(&cannot_listen)?;
            // The first stdout lines, so whoever started us (tests, scripts
            // with --listen 127.0.0.1:0) learns the ports without polling.
            if several {
                println!("listening on http://{addr} for newsletter {id}");
            } else {
                println!("listening on http://{addr}");
            }
            level_log(clock.as_ref(), "INFO", &e.banner);
            let mut stopped = stopped.clone();
            servers.spawn(async move {
                axum::serve(listener, unsubscribe::router(e.service))
                    .with_graceful_shutdown(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
            });
        }
        tokio::spawn(async move {
            shutdown().await;
            let _ = stop.send(true);
        });
        while let Some(done) = servers.join_next().await {
            let served = done.map_err(|e| CliError::Message {
                code: exit::SOME_FAILED,
                text: e.to_string(),
            })?;
            served.map_err(|e| CliError::Message {
                code: exit::SOME_FAILED,
                text: e.to_string(),
            })?;
        }
        level_log(clock.as_ref(), "INFO", "stopped");
        Ok(exit::OK)
    })
}

/// One newsletter's unsubscribe service, ready to be bound.
struct Endpoint {
    listen: String,
    service: std::sync::Arc<Service>,
    banner: String,
}

/// Opens a newsletter's ledger and builds its service.
fn endpoint(config: &Config, listen: String, clock: &SharedClock) -> Result<Endpoint, CliError> {
    // A development secret would accept tokens anyone can compute.
    let keyring = Keyring::from_config(config, false).map_err(|e| {
        CliError::input(format!(
            "{e}; `briefing serve` needs the same secret the sends used"
        ))
    })?;
    let location = Location::from_config(config)?;
    let ledger_name = location.display();
    let existed = match &location {
        Location::Sqlite(p) => p.exists(),
        Location::Postgres(_) => true,
    };
    // A 200 tells the reader they are off the list: that must survive a
    // power cut, not only a crash, so this connection syncs every commit.
    let ledger = Ledger::open_at(&location)?;
    ledger.sync_every_commit()?;
    if !existed {
        level_log(
            clock.as_ref(),
            "WARN",
            &format!(
                "the ledger {} did not exist: no link works until a send records tokens there",
                ledger_name
            ),
        );
    }
    let previous = keyring.previous.len();
    let log_clock = clock.clone();
    let service = Service::new(
        ledger,
        keyring,
        Settings::from_config(config),
        clock.clone(),
        move |r: &RequestLog| {
            level_log(log_clock.as_ref(), r.level(), &r.to_string());
        },
    );
    Ok(Endpoint {
        listen,
        service,
        banner: format!(
            "serving unsubscribes for list {} from {} ({previous} previous secret(s) accepted)",
            config.sender.list_id, ledger_name
        ),
    })
}

/// A log line on stderr: RFC 3339 time, level, message.
fn level_log(clock: &dyn Clock, level: &str, msg: &str) {
    elog(clock, &format!("{level} {msg}"));
}

/// Ctrl-C, or SIGTERM from systemd: finish requests in flight, then exit.
async fn shutdown() {
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
