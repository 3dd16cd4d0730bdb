//! Wiring: connect to NATS, bind, serve until shutdown.

use std::sync::Arc;

use contracts::runtime::{Activity, nats};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    Result, Settings,
    direct::DirectCommands,
    requester::Requester,
    routes::{AppState, router},
};

/// A built, not yet serving, edge.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    activity: Activity,
}

impl Application {
    /// Connects to NATS and binds the listener. Requests go to the subjects of the
    /// settings' namespace.
    pub async fn build(settings: Settings) -> Result<Self> {
        let names = settings.common.names();
        let client = nats::connect(&settings.common.nats_url, "ackgate-edge").await?;
        let direct = DirectCommands::from_settings(
            &settings.direct_commands,
            &names.officer_events,
            &settings.kafka,
            &settings.produce,
        )?;
        if !settings.direct_commands.is_empty() {
            tracing::info!(commands = ?settings.direct_commands, "accepting these commands directly (Option A)");
        }
        let state = AppState {
            requester: Requester::new(client.clone()),
            direct: direct.map(Arc::new),
            body_limit_bytes: settings.body_limit_bytes,
            command_timeout: settings.command_timeout,
            query_timeout: settings.query_timeout,
            names,
        };
        let listener = TcpListener::bind(settings.http_addr).await?;
        Ok(Self {
            listener,
            router: router(state, nats::nats_readiness(client)),
            activity: Activity::default(),
        })
    }

    /// The port the REST API listens on.
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// What [`Self::run`] is still doing, for a stop that runs out of grace.
    pub fn activity(&self) -> Activity {
        self.activity.clone()
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight requests finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let serving = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .into_future();
        let name = "http server (in-flight requests)";
        self.activity.track(name, serving).await?;
        Ok(())
    }
}
