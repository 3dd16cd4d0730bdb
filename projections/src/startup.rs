//! Wiring: connect, consume, answer queries and health until shutdown.

use std::{collections::HashMap, sync::Arc, time::Duration};

use contracts::{Catalog, Names, timeline::Component, topics::dead_letter_topic};
use runtime::{
    Activity, Readiness, Timeline, all_ready, health_router,
    kafka::{ensure_topic, ensure_topic_when_reachable, kafka_readiness},
    metrics, nats,
};
use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;

use crate::{
    Error, Result, Settings,
    config::StoreKind,
    consumer::{self, Applier, EventConsumer, ResumeFromStore},
    deadletters::DeadLetterPublisher,
    event::Decoder,
    queries::{self, Queries},
    store::{ApplyPolicy, MemoryStore, Offsets, PostgresStore, ReadModelStore},
    timeline::{
        MemoryTimeline, PostgresTimeline, TimelineStore,
        recorder::{self, Reading},
    },
    watermarks::Watermarks,
};

/// The store the settings chose, for the read models and the timeline.
enum Store {
    Memory(Arc<MemoryStore>, Arc<MemoryTimeline>),
    Postgres(Arc<PostgresStore>, Arc<PostgresTimeline>),
}

/// A built, not yet running, projections process.
pub struct Application {
    settings: Settings,
    names: Arc<Names>,
    /// The event topics of the catalog, in the namespace: one consumer each.
    topics: Vec<String>,
    client: async_nats::Client,
    store: Store,
    listener: TcpListener,
    activity: Activity,
}

impl Application {
    /// Connects to NATS and the store (running its migrations) and binds the health
    /// endpoint. Topics, subjects and the consumer group are those of the settings'
    /// namespace.
    pub async fn build(settings: Settings) -> Result<Self> {
        let names = Arc::new(settings.common.names());
        let catalog = Arc::new(settings.common.catalog()?);
        let topics = event_topics(&catalog, &names);
        metrics::install(metrics::Service::Projections, settings.common.metrics);
        let decoder = Decoder::new(catalog);
        let client = nats::connect(&settings.common.nats_url, "ackgate-projections").await?;
        let store = match settings.store {
            StoreKind::Memory => Store::Memory(
                Arc::new(MemoryStore::new(decoder)),
                Arc::new(MemoryTimeline::default()),
            ),
            StoreKind::Postgres => {
                let url = &settings.database_url;
                Store::Postgres(
                    Arc::new(PostgresStore::open(url, decoder).await?),
                    Arc::new(PostgresTimeline::open(url).await?),
                )
            }
        };

        let listener = TcpListener::bind(settings.http_addr).await?;
        Ok(Self {
            settings,
            names,
            topics,
            client,
            store,
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

    /// Consumes and answers until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let Self {
            settings,
            names,
            topics,
            client,
            store,
            listener,
            activity,
        } = self;
        let parts = Parts {
            settings,
            names,
            topics,
            client,
            listener,
            activity,
        };
        match store {
            Store::Memory(store, timeline) => {
                parts.run(store, (timeline, Reading::Whole), shutdown).await
            }
            Store::Postgres(store, timeline) => {
                parts
                    .run(store, (timeline, Reading::Shared), shutdown)
                    .await
            }
        }
    }
}

struct Parts {
    settings: Settings,
    names: Arc<Names>,
    topics: Vec<String>,
    client: async_nats::Client,
    listener: TcpListener,
    activity: Activity,
}

impl Parts {
    async fn run<S: ReadModelStore, T: TimelineStore>(
        self,
        store: Arc<S>,
        (timeline, reading): (Arc<T>, Reading),
        shutdown: CancellationToken,
    ) -> Result<()> {
        let (settings, names, activity) = (&self.settings, &self.names, &self.activity);
        let bootstrap = &settings.kafka.kafka_bootstrap;
        let reporter = Timeline::open(
            &self.client,
            names,
            &settings.common.timeline,
            Component::Projections,
        )
        .await?;
        let dead_letters = DeadLetterPublisher::new(bootstrap, reporter.clone())?;
        let ready = self.ready(&store, &timeline, &shutdown)?;
        let policy = ApplyPolicy {
            attempts: settings.apply_attempts.max(1),
            backoff: settings.apply_backoff,
        };
        let mut consuming = Vec::new();
        let mut applied = HashMap::new();
        for topic in &self.topics {
            let (consumer, stored) = self.open_consumer(topic, store.as_ref(), &shutdown).await?;
            let (sender, receiver) = watch::channel(stored);
            applied.insert(topic.clone(), receiver);
            let applier = Applier {
                store: Arc::clone(&store),
                policy,
                batch_max: settings.batch_max.max(1),
                dead_letters: dead_letters.clone(),
                applied: sender,
                timeline: reporter.clone(),
            };
            let grace = settings.common.shutdown_grace;
            consuming.push(consumer::run(consumer, applier, shutdown.clone(), grace));
        }
        let queries = Queries {
            store: Arc::clone(&store),
            timeline: Arc::clone(&timeline),
            watermarks: Watermarks::new(bootstrap)?,
            applied,
            read_wait_max: settings.read_wait_max,
            policy,
            dead_letters: dead_letters.clone(),
            reporter: reporter.clone(),
            names: Arc::clone(names),
        };
        let recording = self.record_timeline(timeline, reading, &shutdown);
        let notices = listen_for_notices(&self.client, Arc::clone(&store), names, &shutdown);
        let notices = notices.await?;
        let http = axum::serve(self.listener, health_router("projections", ready))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let grace = settings.common.shutdown_grace;
        let publishing =
            dead_letters.keep_publishing(store.as_ref(), Duration::from_secs(5), shutdown.clone());
        let consuming = futures::future::join_all(consuming);
        let answering = queries::serve(self.client.clone(), queries, shutdown);
        let (http, _, answering, (), (), ()) = tokio::join!(
            activity.track("health endpoint", http.into_future()),
            activity.track(
                "kafka consumers (last batch, offset commit, group leave)",
                consuming
            ),
            activity.track("query responders (in-flight queries)", answering),
            activity.track("notice listener", notices),
            activity.track("dead-letter publisher", publishing),
            activity.track("timeline recorder (current batch)", recording),
        );
        let flush = nats::flush_within(&self.client, grace);
        activity.track("NATS flush", flush).await;
        http?;
        answering
    }

    /// Stores the timeline's notices, unless the timeline is off, on a low-priority thread.
    fn record_timeline<T: TimelineStore>(
        &self,
        timeline: Arc<T>,
        reading: Reading,
        shutdown: &CancellationToken,
    ) -> impl Future<Output = ()> + use<T> {
        let settings = &self.settings.common.timeline;
        let on = settings.timeline;
        let recording = recorder::run(
            self.client.clone(),
            Arc::clone(&self.names),
            timeline,
            reading,
            settings.timeline_retention,
            shutdown.clone(),
        );
        // It gives way to the consumers, the queries and the services sharing the cores:
        // under saturation the notices wait in their stream.
        let recording = on.then(|| runtime::background::run_at_low_priority("timeline", recording));
        async move {
            if let Some(recording) = recording {
                recording.await;
            }
        }
    }

    /// Ready while NATS is connected, the stores answer and Kafka leads every events topic.
    fn ready<S: ReadModelStore, T: TimelineStore>(
        &self,
        store: &Arc<S>,
        timeline: &Arc<T>,
        shutdown: &CancellationToken,
    ) -> Result<Readiness> {
        let store = Arc::clone(store);
        let timeline = Arc::clone(timeline);
        let bootstrap = &self.settings.kafka.kafka_bootstrap;
        let mut checks = vec![
            nats::nats_readiness(self.client.clone()),
            Arc::new(move || store.ready()) as Readiness,
            Arc::new(move || timeline.ready()) as Readiness,
        ];
        for topic in &self.topics {
            checks.push(kafka_readiness(bootstrap, topic, shutdown.clone())?);
        }
        Ok(all_ready(checks))
    }

    /// Creates the topic's dead-letter topic, then its consumer, resuming from the store's
    /// offsets of the topic (which it also returns).
    async fn open_consumer<S: ReadModelStore>(
        &self,
        topic: &str,
        store: &S,
        shutdown: &CancellationToken,
    ) -> Result<(EventConsumer, Offsets)> {
        let settings = &self.settings;
        let bootstrap = &settings.kafka.kafka_bootstrap;
        let (partitions, replication) = (settings.topic_partitions, settings.topic_replication);
        // The events topic first, so the consumer joins with it there: a topic appearing
        // later is found only at the next metadata refresh and costs the group a rebalance.
        // A broker down at start must not stop the service starting: then in the background.
        let attempt = ensure_topic(bootstrap, topic, partitions, replication);
        let created = tokio::time::timeout(TOPIC_CHECK_PATIENCE, attempt).await;
        if !matches!(created, Ok(Ok(()))) {
            tracing::warn!(
                topic,
                "cannot create the topic yet; retrying in the background"
            );
            let retry = ensure_topic_when_reachable(
                bootstrap.clone(),
                topic.to_owned(),
                partitions,
                replication,
                shutdown.clone(),
            );
            tokio::spawn(retry);
        }
        tokio::spawn(ensure_topic_when_reachable(
            bootstrap.clone(),
            dead_letter_topic(topic),
            settings.dlq_topic_partitions,
            -1,
            shutdown.clone(),
        ));
        let stored = store.offsets(topic).await?;
        let group = consumer_group(&self.names, &settings.group_id, topic);
        let resume = ResumeFromStore::new(topic, &stored);
        let fetch_wait = settings.fetch_wait_max_ms;
        let consumer = consumer::create_consumer(bootstrap, &group, topic, fetch_wait, resume)?;
        Ok((consumer, stored))
    }
}

/// The consumer group of one events topic: `<group>.<topic>` in the namespace. A group per
/// topic, so a topic added to the catalog (or created late) rebalances only its own
/// consumers.
fn consumer_group(names: &Names, group_id: &str, topic: &str) -> String {
    let prefix = format!("{}.", names.namespace);
    let base = match names.namespace.is_empty() {
        true => topic,
        false => topic.strip_prefix(&prefix).unwrap_or(topic),
    };
    names.namespace.dotted(&format!("{group_id}.{base}"))
}

/// Longest wait at start for an events topic to be created before consuming it.
const TOPIC_CHECK_PATIENCE: Duration = Duration::from_secs(2);

/// Every event topic of the catalog, in the namespace.
pub fn event_topics(catalog: &Catalog, names: &Names) -> Vec<String> {
    catalog
        .topics()
        .iter()
        .map(|topic| names.namespace.dotted(topic))
        .collect()
}

/// Which notice a message is.
#[derive(Debug, Clone, Copy)]
enum Notice {
    Accepted,
    Parked,
}

/// Subscribes to the BL services' accepted and parked notices (on the subjects in
/// `names`), so a command shows as `accepted` before its event is projected, and as
/// `dead-lettered` while it is parked. Returns the task that applies them.
async fn listen_for_notices<S: ReadModelStore>(
    client: &async_nats::Client,
    store: Arc<S>,
    names: &Names,
    shutdown: &CancellationToken,
) -> Result<impl Future<Output = ()> + use<S>> {
    use futures::StreamExt;
    let subscribe = |subject: &String, notice: Notice| {
        let subscribed = client.subscribe(subject.clone());
        async move {
            let subscriber = subscribed
                .await
                .map_err(|e| Error::NatsService(e.to_string()))?;
            Ok::<_, Error>(subscriber.map(move |message| (notice, message)))
        }
    };
    let accepted = subscribe(&names.command_accepted, Notice::Accepted).await?;
    let parked = subscribe(&names.command_parked, Notice::Parked).await?;
    let mut notices = futures::stream::select(accepted, parked);
    let shutdown = shutdown.clone();
    Ok(async move {
        loop {
            let notice = tokio::select! {
                () = shutdown.cancelled() => return,
                notice = notices.next() => notice,
            };
            let Some((kind, message)) = notice else {
                return;
            };
            apply_notice(store.as_ref(), kind, &message).await;
        }
    })
}

async fn apply_notice<S: ReadModelStore>(store: &S, kind: Notice, notice: &async_nats::Message) {
    let applied = match kind {
        Notice::Parked => match serde_json::from_slice(&notice.payload) {
            Ok(n) => store.note_parked(n).await,
            Err(e) => Err(Error::Store(e.to_string())),
        },
        Notice::Accepted => match serde_json::from_slice(&notice.payload) {
            Ok(n) => store.note_accepted(n).await,
            Err(e) => Err(Error::Store(e.to_string())),
        },
    };
    if let Err(e) = applied {
        tracing::warn!(subject = %notice.subject, error = %e, "notice not recorded");
    }
}
