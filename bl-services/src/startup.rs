//! Wiring: load the catalog, connect, build the pipeline, serve commands and health until
//! shutdown.

use std::sync::Arc;

use contracts::{Catalog, Names, catalog::CommandPath, timeline::Component};
use runtime::{
    Activity, Timeline, all_ready, health_router,
    kafka::{ensure_topic_when_reachable, kafka_readiness},
    metrics, nats,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    Error, Result, Settings,
    aggregates::AggregateStore,
    dlq::CommandDlq,
    domain::Handlers,
    kafka::EventProducer,
    ledger::CommandLedger,
    notices::Notifier,
    observe,
    pipeline::{CommandStores, Pipeline},
    service,
};

/// A built, not yet running, business-logic service.
pub struct Application {
    settings: Settings,
    names: Arc<Names>,
    catalog: Arc<Catalog>,
    domains: Vec<String>,
    client: async_nats::Client,
    pipeline: Arc<Pipeline>,
    /// The dead-letter queue, counted for the metrics.
    dead_letters: CommandDlq,
    listener: TcpListener,
    activity: Activity,
}

impl Application {
    /// Loads and checks the catalog against the handlers, connects to NATS, opens the
    /// buckets, creates the producer and binds the health endpoint, all in the settings'
    /// namespace. Fails fast on a configuration that cannot work.
    pub async fn build(settings: Settings) -> Result<Self> {
        let names = Arc::new(settings.common.names());
        let catalog = settings
            .common
            .catalog()
            .map_err(|e| Error::Catalog(e.to_string()))?;
        let handlers = Handlers::shipped();
        handlers.check(&catalog).map_err(Error::Catalog)?;
        let domains = service::served_domains(&catalog, &settings.domains)?;
        metrics::install(metrics::Service::BusinessLogic, settings.common.metrics);
        let client = nats::connect(&settings.common.nats_url, "ackgate-bl-service").await?;
        let stores = open_stores(&settings, &names, client.clone()).await?;
        let dead_letters = stores.dlq.clone();
        let turn_wait = settings.produce.produce_timeout;
        let pipeline = Pipeline::new(handlers, stores, Arc::clone(&names), turn_wait);
        let listener = TcpListener::bind(settings.http_addr).await?;
        Ok(Self {
            settings,
            names,
            catalog: Arc::new(catalog),
            domains,
            client,
            pipeline: Arc::new(pipeline),
            dead_letters,
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

    /// The domains this instance serves.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight commands and flushes
    /// NATS (for at most the shutdown grace: with NATS gone a flush never ends).
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let mut checks = vec![nats::nats_readiness(self.client.clone())];
        for topic in self.topics() {
            // A service started before its broker still comes up, answering
            // kafka-unavailable (and not ready) until the broker does.
            tokio::spawn(ensure_topic_when_reachable(
                self.settings.kafka.kafka_bootstrap.clone(),
                topic.clone(),
                self.settings.topic_partitions,
                self.settings.topic_replication,
                shutdown.clone(),
            ));
            let kafka = &self.settings.kafka.kafka_bootstrap;
            checks.push(kafka_readiness(kafka, &topic, shutdown.clone())?);
        }
        checks.extend(self.pipeline.producer_readiness());
        let ready = all_ready(checks);
        tokio::spawn(observe::count_dead_letters(
            self.dead_letters,
            shutdown.clone(),
        ));
        let http = axum::serve(self.listener, health_router("bl-service", ready))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let commands = service::serve(
            self.client.clone(),
            self.pipeline,
            self.catalog,
            &self.names,
            &self.domains,
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

    /// The event topics of the served domains, in the namespace.
    fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .catalog
            .entries()
            .iter()
            .filter(|e| {
                e.spec.path == CommandPath::BusinessLogic
                    && self.domains.contains(&e.spec.aggregate.kind)
            })
            .map(|e| self.names.namespace.dotted(&e.spec.topic))
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }
}

/// The JetStream key/value buckets of the command side.
pub struct Buckets {
    /// Aggregate state.
    pub aggregates: AggregateStore,
    /// Idempotency.
    pub ledger: CommandLedger,
    /// Parked commands.
    pub dlq: CommandDlq,
}

/// Opens (creating them if needed) the aggregate, ledger and dead-letter buckets of the
/// namespace of `names`.
pub async fn open_buckets(
    settings: &Settings,
    names: &Names,
    client: async_nats::Client,
) -> Result<Buckets> {
    let aggregates = AggregateStore::open(client.clone(), &names.aggregates_bucket).await?;
    let ledger = CommandLedger::open(
        client.clone(),
        &names.command_ledger_bucket,
        settings.ledger_retention,
        settings.attempt_lease(),
    )
    .await?;
    let dlq = CommandDlq::open(client, &names.command_dlq_bucket).await?;
    Ok(Buckets {
        aggregates,
        ledger,
        dlq,
    })
}

/// Opens everything the pipeline writes to: the buckets, the producer, the notifiers, in
/// the namespace of `names`.
pub async fn open_stores(
    settings: &Settings,
    names: &Arc<Names>,
    client: async_nats::Client,
) -> Result<CommandStores> {
    let Buckets {
        aggregates,
        ledger,
        dlq,
    } = open_buckets(settings, names, client.clone()).await?;
    let mut producer = EventProducer::new(
        "ackgate-bl-service",
        &settings.kafka.kafka_bootstrap,
        settings.produce.produce_timeout,
        settings.produce.linger_ms,
    )?;
    if settings.transactions {
        producer = producer.with_transactions(
            &transactional_id_prefix(names),
            usize::from(settings.transaction_lanes),
        );
    }
    let timeline = &settings.common.timeline;
    let timeline = Timeline::open(&client, names, timeline, Component::BlService).await?;
    Ok(CommandStores {
        aggregates,
        ledger,
        dlq,
        producer,
        notifier: Notifier::new(client.clone(), Arc::clone(names)),
        client,
        timeline,
    })
}

/// `<namespace>.ackgate-bl-service.<instance>`: unique to this process, so no two live
/// instances ever share (and fence) a transactional id.
fn transactional_id_prefix(names: &Names) -> String {
    let instance = uuid::Uuid::new_v4().simple();
    names
        .namespace
        .dotted(&format!("ackgate-bl-service.{instance}"))
}
