//! Wiring: connect, build the handler, serve commands and health until shutdown.

use std::{sync::Arc, time::Duration};

use contracts::{
    runtime::{health_router, nats},
    subjects, topics,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    Result, Settings,
    dlq::CommandDlq,
    kafka::{EventProducer, ensure_topic},
    ledger::CommandLedger,
    notices::Notifier,
    officer::{CommandStores, OfficerCommands},
    registry::BadgeRegistry,
    service,
};

/// A built, not yet running, officer service.
pub struct Application {
    settings: Settings,
    client: async_nats::Client,
    commands: Arc<OfficerCommands>,
    listener: TcpListener,
}

impl Application {
    /// Connects to NATS, opens the registry, ledger and dead-letter buckets, creates the
    /// producer and binds the health endpoint. Fails fast on a configuration that cannot work.
    pub async fn build(settings: Settings) -> Result<Self> {
        let client = nats::connect(&settings.common.nats_url, "ackgate-officer-service").await?;
        let stores = open_stores(&settings, client.clone()).await?;
        let commands = Arc::new(OfficerCommands::new(stores)?);
        let listener = TcpListener::bind(settings.http_addr).await?;
        Ok(Self {
            settings,
            client,
            commands,
            listener,
        })
    }

    /// The port `/health` and `/ready` are served on.
    pub fn http_port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight commands.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        tokio::spawn(create_topic_when_reachable(
            self.settings.clone(),
            shutdown.clone(),
        ));
        let ready = nats::nats_readiness(self.client.clone());
        let http = axum::serve(self.listener, health_router("officer-service", ready))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let commands = service::serve(
            self.client.clone(),
            self.commands,
            self.settings.max_in_flight,
            shutdown,
        );
        let (http, commands) = tokio::join!(http.into_future(), commands);
        let _ = self.client.flush().await;
        http?;
        commands
    }
}

/// Creates the officer topic, retrying while Kafka is unreachable: a service started before
/// its broker still comes up, answering `kafka-unavailable` until the broker does.
async fn create_topic_when_reachable(settings: Settings, shutdown: CancellationToken) {
    let kafka = &settings.kafka.kafka_bootstrap;
    loop {
        let created = ensure_topic(
            kafka,
            topics::OFFICER_EVENTS,
            settings.topic_partitions,
            settings.topic_replication,
        );
        match created.await {
            Ok(()) => return tracing::info!(topic = topics::OFFICER_EVENTS, "topic ready"),
            Err(e) => tracing::warn!(error = %e, "cannot create topic yet; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// The JetStream key/value buckets of the command side.
pub struct Buckets {
    /// Badge uniqueness.
    pub registry: BadgeRegistry,
    /// Idempotency.
    pub ledger: CommandLedger,
    /// Parked commands.
    pub dlq: CommandDlq,
}

/// Opens (creating them if needed) the registry, ledger and dead-letter buckets.
pub async fn open_buckets(settings: &Settings, client: async_nats::Client) -> Result<Buckets> {
    let registry = BadgeRegistry::open(client.clone(), subjects::BADGE_REGISTRY_BUCKET).await?;
    let ledger = CommandLedger::open(
        client.clone(),
        subjects::COMMAND_LEDGER_BUCKET,
        settings.ledger_retention,
        settings.attempt_lease(),
    )
    .await?;
    let dlq = CommandDlq::open(client, subjects::COMMAND_DLQ_BUCKET).await?;
    Ok(Buckets {
        registry,
        ledger,
        dlq,
    })
}

/// Opens everything a command handler writes to: the buckets, the producer, the notifier.
pub async fn open_stores(settings: &Settings, client: async_nats::Client) -> Result<CommandStores> {
    let Buckets {
        registry,
        ledger,
        dlq,
    } = open_buckets(settings, client.clone()).await?;
    let producer = EventProducer::new(
        "ackgate-officer-service",
        &settings.kafka.kafka_bootstrap,
        topics::OFFICER_EVENTS,
        settings.produce.produce_timeout,
        settings.produce.linger_ms,
    )?;
    Ok(CommandStores {
        registry,
        ledger,
        dlq,
        producer,
        notifier: Notifier::new(client),
    })
}
