//! Wiring: connect, consume, answer queries and health until shutdown.

use std::{sync::Arc, time::Duration};

use contracts::Names;
use runtime::{
    Activity, Readiness, all_ready, health_router,
    kafka::{ensure_topic_when_reachable, kafka_readiness},
    nats,
};
use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;

use crate::{
    Error, Result, Settings,
    config::StoreKind,
    consumer::{self, Applier, EventConsumer, ResumeFromStore},
    deadletters::DeadLetterPublisher,
    queries::{self, Queries},
    store::{ApplyPolicy, MemoryStore, Offsets, PostgresStore, ReadModelStore},
    watermarks::Watermarks,
};

/// The store the settings chose.
enum Store {
    Memory(Arc<MemoryStore>),
    Postgres(Arc<PostgresStore>),
}

/// A built, not yet running, projections process.
pub struct Application {
    settings: Settings,
    names: Arc<Names>,
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
        let client = nats::connect(&settings.common.nats_url, "ackgate-projections").await?;
        let store = match settings.store {
            StoreKind::Memory => Store::Memory(Arc::new(MemoryStore::default())),
            StoreKind::Postgres => {
                Store::Postgres(Arc::new(PostgresStore::open(&settings.database_url).await?))
            }
        };
        let listener = TcpListener::bind(settings.http_addr).await?;
        Ok(Self {
            settings,
            names,
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
            client,
            store,
            listener,
            activity,
        } = self;
        let parts = Parts {
            settings,
            names,
            client,
            listener,
            activity,
        };
        match store {
            Store::Memory(store) => parts.run(store, shutdown).await,
            Store::Postgres(store) => parts.run(store, shutdown).await,
        }
    }
}

struct Parts {
    settings: Settings,
    names: Arc<Names>,
    client: async_nats::Client,
    listener: TcpListener,
    activity: Activity,
}

impl Parts {
    async fn run<S: ReadModelStore>(
        self,
        store: Arc<S>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let (settings, names, activity) = (&self.settings, &self.names, &self.activity);
        let bootstrap = &settings.kafka.kafka_bootstrap;
        let (consumer, dead_letters, stored) = self.open_kafka(store.as_ref(), &shutdown).await?;
        let ready = self.ready(&store, &shutdown)?;
        let policy = ApplyPolicy {
            attempts: settings.apply_attempts.max(1),
            backoff: settings.apply_backoff,
        };
        let (applied, applied_rx) = watch::channel(stored);
        let applier = Applier {
            store: Arc::clone(&store),
            policy,
            batch_max: settings.batch_max.max(1),
            dead_letters: dead_letters.clone(),
            applied,
        };
        let queries = Queries {
            store: Arc::clone(&store),
            watermarks: Watermarks::new(bootstrap)?,
            applied: applied_rx,
            read_wait_max: settings.read_wait_max,
            policy,
            names: Arc::clone(names),
        };
        let notices = listen_for_notices(&self.client, Arc::clone(&store), names, &shutdown);
        let notices = notices.await?;
        let http = axum::serve(self.listener, health_router("projections", ready))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let grace = settings.common.shutdown_grace;
        let publishing =
            dead_letters.keep_publishing(store.as_ref(), Duration::from_secs(5), shutdown.clone());
        let consuming = consumer::run(consumer, applier, shutdown.clone(), grace);
        let answering = queries::serve(self.client.clone(), queries, shutdown);
        let (http, (), answering, (), ()) = tokio::join!(
            activity.track("health endpoint", http.into_future()),
            activity.track(
                "kafka consumer (last batch, offset commit, group leave)",
                consuming
            ),
            activity.track("query responders (in-flight queries)", answering),
            activity.track("notice listener", notices),
            activity.track("dead-letter publisher", publishing),
        );
        let flush = nats::flush_within(&self.client, grace);
        activity.track("NATS flush", flush).await;
        http?;
        answering
    }

    /// Ready while NATS is connected, the store answers and Kafka leads the events topic.
    fn ready<S: ReadModelStore>(
        &self,
        store: &Arc<S>,
        shutdown: &CancellationToken,
    ) -> Result<Readiness> {
        let store = Arc::clone(store);
        let bootstrap = &self.settings.kafka.kafka_bootstrap;
        let topic = &self.names.officer_events;
        Ok(all_ready(vec![
            nats::nats_readiness(self.client.clone()),
            Arc::new(move || store.ready()),
            kafka_readiness(bootstrap, topic, shutdown.clone())?,
        ]))
    }

    /// Creates the dead-letter topic, then the consumer (resuming from the store's offsets
    /// of the events topic, which it also returns) and the dead-letter publisher.
    async fn open_kafka<S: ReadModelStore>(
        &self,
        store: &S,
        shutdown: &CancellationToken,
    ) -> Result<(EventConsumer, DeadLetterPublisher, Offsets)> {
        let (settings, names) = (&self.settings, &self.names);
        let bootstrap = &settings.kafka.kafka_bootstrap;
        let dlq_topic = &names.officer_events_dlq;
        // In the background: a broker down at start must not stop the service starting.
        tokio::spawn(ensure_topic_when_reachable(
            bootstrap.clone(),
            dlq_topic.clone(),
            settings.dlq_topic_partitions,
            -1,
            shutdown.clone(),
        ));
        let stored = store.offsets(&names.officer_events).await?;
        let group = names.namespace.dotted(&settings.group_id);
        let resume = ResumeFromStore::new(&names.officer_events, &stored);
        let topic = &names.officer_events;
        let fetch_wait = settings.fetch_wait_max_ms;
        let consumer = consumer::create_consumer(bootstrap, &group, topic, fetch_wait, resume)?;
        let dead_letters = DeadLetterPublisher::new(bootstrap, dlq_topic)?;
        Ok((consumer, dead_letters, stored))
    }
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
