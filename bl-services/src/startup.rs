//! Wiring: connect, build the handler, serve commands and health until shutdown.

use std::sync::Arc;

use contracts::Names;
use runtime::{
    Activity, all_ready, health_router,
    kafka::{ensure_topic_when_reachable, kafka_readiness},
    nats,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    Result, Settings,
    dlq::CommandDlq,
    kafka::EventProducer,
    ledger::CommandLedger,
    notices::Notifier,
    officer::{CommandStores, OfficerCommands},
    registry::BadgeRegistry,
    service,
};

/// A built, not yet running, officer service.
pub struct Application {
    settings: Settings,
    names: Arc<Names>,
    client: async_nats::Client,
    commands: Arc<OfficerCommands>,
    listener: TcpListener,
    activity: Activity,
}

impl Application {
    /// Connects to NATS, opens the registry, ledger and dead-letter buckets, creates the
    /// producer and binds the health endpoint, all in the settings' namespace. Fails fast on
    /// a configuration that cannot work.
    pub async fn build(settings: Settings) -> Result<Self> {
        let names = Arc::new(settings.common.names());
        let client = nats::connect(&settings.common.nats_url, "ackgate-officer-service").await?;
        let stores = open_stores(&settings, &names, client.clone()).await?;
        let commands = Arc::new(OfficerCommands::new(stores, Arc::clone(&names))?);
        let listener = TcpListener::bind(settings.http_addr).await?;
        Ok(Self {
            settings,
            names,
            client,
            commands,
            listener,
            activity: Activity::default(),
        })
    }

    /// What [`Self::run`] is still doing, for a stop that runs out of grace.
    pub fn activity(&self) -> Activity {
        self.activity.clone()
    }

    /// The port `/health` and `/ready` are served on.
    pub fn http_port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight commands and flushes
    /// NATS (for at most the shutdown grace: with NATS gone a flush never ends).
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        // A service started before its broker still comes up, answering kafka-unavailable
        // (and not ready) until the broker does.
        tokio::spawn(ensure_topic_when_reachable(
            self.settings.kafka.kafka_bootstrap.clone(),
            self.names.officer_events.clone(),
            self.settings.topic_partitions,
            self.settings.topic_replication,
            shutdown.clone(),
        ));
        let kafka = &self.settings.kafka.kafka_bootstrap;
        let mut checks = vec![
            nats::nats_readiness(self.client.clone()),
            kafka_readiness(kafka, &self.names.officer_events, shutdown.clone())?,
        ];
        checks.extend(self.commands.producer_readiness());
        let ready = all_ready(checks);
        let http = axum::serve(self.listener, health_router("officer-service", ready))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let commands = service::serve(
            self.client.clone(),
            self.commands,
            &self.names,
            self.settings.max_in_flight,
            shutdown,
        );
        let activity = &self.activity;
        let (http, commands) = tokio::join!(
            activity.track("health endpoint", http.into_future()),
            activity.track("command service (in-flight commands)", commands),
        );
        let flush = nats::flush_within(&self.client, self.settings.common.shutdown_grace);
        activity.track("NATS flush", flush).await;
        http?;
        commands
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

/// Opens (creating them if needed) the registry, ledger and dead-letter buckets of the
/// namespace of `names`.
pub async fn open_buckets(
    settings: &Settings,
    names: &Names,
    client: async_nats::Client,
) -> Result<Buckets> {
    let registry = BadgeRegistry::open(client.clone(), &names.badge_registry_bucket).await?;
    let ledger = CommandLedger::open(
        client.clone(),
        &names.command_ledger_bucket,
        settings.ledger_retention,
        settings.attempt_lease(),
    )
    .await?;
    let dlq = CommandDlq::open(client, &names.command_dlq_bucket).await?;
    Ok(Buckets {
        registry,
        ledger,
        dlq,
    })
}

/// Opens everything a command handler writes to: the buckets, the producer, the notifier,
/// in the namespace of `names`.
pub async fn open_stores(
    settings: &Settings,
    names: &Arc<Names>,
    client: async_nats::Client,
) -> Result<CommandStores> {
    let Buckets {
        registry,
        ledger,
        dlq,
    } = open_buckets(settings, names, client.clone()).await?;
    let mut producer = EventProducer::new(
        "ackgate-officer-service",
        &settings.kafka.kafka_bootstrap,
        &names.officer_events,
        settings.produce.produce_timeout,
        settings.produce.linger_ms,
    )?;
    if settings.transactions {
        producer = producer.with_transactions(
            &transactional_id_prefix(names),
            usize::from(settings.transaction_lanes),
        );
    }
    Ok(CommandStores {
        registry,
        ledger,
        dlq,
        producer,
        notifier: Notifier::new(client, Arc::clone(names)),
    })
}

/// `<namespace>.ackgate-officer-service.<instance>`: unique to this process, so no two live
/// instances ever share (and fence) a transactional id.
fn transactional_id_prefix(names: &Names) -> String {
    let instance = uuid::Uuid::new_v4().simple();
    names
        .namespace
        .dotted(&format!("ackgate-officer-service.{instance}"))
}
