//! `briefing serve`: the one-click unsubscribe endpoint (RFC 8058).

use briefing::audience::token::Keyring;
use briefing::clock::Clock;
use briefing::config::Config;
use briefing::deliver::ledger::{Ledger, Location};
use briefing::unsubscribe::{self, RequestLog, Service, Settings};

use super::output::elog;
use super::{CliError, CliResult, Context, SharedClock, exit};

/// Arguments of `briefing serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (default: serve.listen in the config).
    #[arg(long)]
    listen: Option<String>,
}

/// Runs `briefing serve`.
pub fn run(args: ServeArgs, config: &Config, clock: SharedClock) -> CliResult {
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
    let listen = args.listen.unwrap_or_else(|| config.serve.listen.clone());
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
    let runtime = super::runtime()?;
    runtime.block_on(async move {
        let cannot_listen = format!("cannot listen on {listen}");
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .context(&cannot_listen)?;
        let addr = listener.local_addr().context(&cannot_listen)?;
        // The first stdout line, so whoever started us (tests, scripts with
        // --listen 127.0.0.1:0) learns the port without polling.
        println!("listening on http://{addr}");
        level_log(
            clock.as_ref(),
            "INFO",
            &format!(
                "serving unsubscribes for list {} from {} ({previous} previous secret(s) accepted)",
                config.sender.list_id, ledger_name
            ),
        );
        axum::serve(listener, unsubscribe::router(service))
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|e| CliError::Message {
                code: exit::SOME_FAILED,
                text: e.to_string(),
            })?;
        level_log(clock.as_ref(), "INFO", "stopped");
        Ok(exit::OK)
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
