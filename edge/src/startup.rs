//! Wiring: connect to NATS, bind, serve until shutdown.

use std::sync::Arc;

use contracts::{Catalog, Names, catalog::CommandPath, timeline::Component};
use runtime::{
    Activity, Readiness, Timeline, all_ready,
    kafka::{ensure_topic_when_reachable, kafka_readiness},
    metrics, nats,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    Result, Settings,
    direct::DirectPath,
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
    /// Loads the catalog, connects to NATS and binds the listener. Requests go to the
    /// subjects of the settings' namespace.
    pub async fn build(settings: Settings) -> Result<Self> {
        let names = settings.common.names();
        let catalog = settings.common.catalog()?;
        metrics::install(metrics::Service::Edge, settings.common.metrics);
        let client = nats::connect(&settings.common.nats_url, "ackgate-edge").await?;
        let direct_topics = direct_topics(&catalog, &names);
        let direct = if direct_topics.is_empty() {
            None
        } else {
            tracing::info!(topics = ?direct_topics, "accepting the catalog's direct commands (Option A)");
            Some(Arc::new(DirectPath::new(
                &settings.kafka,
                &settings.produce,
            )?))
        };
        let timeline = &settings.common.timeline;
        let timeline = Timeline::open(&client, &names, timeline, Component::Edge).await?;
        let state = AppState {
            timeline,
            requester: Requester::new(client.clone()),
            direct,
            body_limit_bytes: settings.body_limit_bytes,
            command_timeout: settings.command_timeout,
            openapi: document(&contracts::apidoc::openapi(
                &catalog,
                env!("CARGO_PKG_VERSION"),
            ))?,
            asyncapi: document(&contracts::apidoc::asyncapi(
                &catalog,
                env!("CARGO_PKG_VERSION"),
            ))?,
            query_timeout: settings.query_timeout,
            names,
        };
        let listener = TcpListener::bind(settings.http_addr).await?;
        let probes = CancellationToken::new();
        let ready = readiness(&settings, &direct_topics, client, &probes)?;
        Ok(Self {
            listener,
            router: router(state, &catalog, ready),
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

/// An API document, serialized once for every request.
fn document(value: &serde_json::Value) -> Result<bytes::Bytes> {
    let bytes = serde_json::to_vec(value).map_err(|e| crate::Error::Document(e.to_string()))?;
    Ok(bytes.into())
}

/// The topics of the catalog's direct commands, in the namespace.
fn direct_topics(catalog: &Catalog, names: &Names) -> Vec<String> {
    let mut topics: Vec<String> = catalog
        .entries()
        .iter()
        .filter(|e| e.spec.path == CommandPath::Direct)
        .map(|e| names.namespace.dotted(&e.spec.topic))
        .collect();
    topics.sort();
    topics.dedup();
    topics
}

/// NATS connected; with direct commands, also Kafka reachable with their topics led (the
/// topics are created if missing).
fn readiness(
    settings: &Settings,
    direct_topics: &[String],
    client: async_nats::Client,
    probes: &CancellationToken,
) -> Result<Readiness> {
    let mut checks = vec![nats::nats_readiness(client)];
    for topic in direct_topics {
        let bootstrap = &settings.kafka.kafka_bootstrap;
        // In the background: the edge comes up not ready while Kafka is down.
        tokio::spawn(ensure_topic_when_reachable(
            bootstrap.clone(),
            topic.clone(),
            settings.topic_partitions,
            settings.topic_replication,
            probes.clone(),
        ));
        checks.push(kafka_readiness(bootstrap, topic, probes.clone())?);
    }
    Ok(all_ready(checks))
}
