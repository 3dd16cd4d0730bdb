//! Wiring: connect to NATS, bind, serve until shutdown.

use std::sync::Arc;

use runtime::{Activity, Readiness, all_ready, kafka::kafka_readiness, nats};
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
    /// Stops the Kafka readiness probe (direct commands only) when serving ends.
    probes: CancellationToken,
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
        let probes = CancellationToken::new();
        let topic = state.names.officer_events.clone();
        let ready = readiness(&settings, &topic, client, &probes)?;
        Ok(Self {
            listener,
            router: router(state, ready),
            activity: Activity::default(),
            probes,
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
        let served = self.activity.track(name, serving).await;
        self.probes.cancel();
        Ok(served?)
    }
}

/// NATS connected; with direct commands, also Kafka reachable with the topic led.
fn readiness(
    settings: &Settings,
    topic: &str,
    client: async_nats::Client,
    probes: &CancellationToken,
) -> Result<Readiness> {
    let mut checks = vec![nats::nats_readiness(client)];
    if !settings.direct_commands.is_empty() {
        let bootstrap = &settings.kafka.kafka_bootstrap;
        checks.push(kafka_readiness(bootstrap, topic, probes.clone())?);
    }
    Ok(all_ready(checks))
}
