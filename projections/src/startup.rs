//! Wiring: connect, consume, answer queries and health until shutdown.

use std::{sync::Arc, time::Duration};

use contracts::{
    runtime::{health_router, kafka::ensure_topic, nats},
    subjects, topics,
};
use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;

use crate::{
    Error, Result, Settings,
    config::StoreKind,
    consumer::{self, Applier, ResumeFromStore},
    deadletters::DeadLetterPublisher,
    queries::{self, Queries},
    store::{ApplyPolicy, MemoryStore, PostgresStore, ReadModelStore},
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
    client: async_nats::Client,
    store: Store,
    listener: TcpListener,
}

impl Application {
    /// Connects to NATS and the store (running its migrations) and binds the health
    /// endpoint.
    pub async fn build(settings: Settings) -> Result<Self> {
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
            client,
            store,
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

    /// Consumes and answers until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let Self {
            settings,
            client,
            store,
            listener,
        } = self;
        let parts = Parts {
            settings,
            client,
            listener,
        };
        match store {
            Store::Memory(store) => parts.run(store, shutdown).await,
            Store::Postgres(store) => parts.run(store, shutdown).await,
        }
    }
}

struct Parts {
    settings: Settings,
    client: async_nats::Client,
    listener: TcpListener,
}

impl Parts {
    async fn run<S: ReadModelStore>(
        self,
        store: Arc<S>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let settings = &self.settings;
        let bootstrap = &settings.kafka.kafka_bootstrap;
        ensure_topic(
            bootstrap,
            topics::OFFICER_EVENTS_DLQ,
            settings.dlq_topic_partitions,
            1,
        )
        .await?;
        let stored = store.offsets(topics::OFFICER_EVENTS).await?;
        let resume = ResumeFromStore::new(topics::OFFICER_EVENTS, &stored);
        let consumer = consumer::create_consumer(
            bootstrap,
            &settings.group_id,
            topics::OFFICER_EVENTS,
            resume,
        )?;
        let policy = ApplyPolicy {
            attempts: settings.apply_attempts.max(1),
            backoff: settings.apply_backoff,
        };
        let dead_letters = DeadLetterPublisher::new(bootstrap, topics::OFFICER_EVENTS_DLQ)?;
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
        };
        let notices =
            listen_for_notices(self.client.clone(), Arc::clone(&store), shutdown.clone()).await?;
        let nats_ready = nats::nats_readiness(self.client.clone());
        let store_ready = Arc::clone(&store);
        let ready: contracts::runtime::Readiness =
            Arc::new(move || nats_ready().and_then(|()| store_ready.ready()));
        let http = axum::serve(self.listener, health_router("projections", ready))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let publishing =
            dead_letters.keep_publishing(store.as_ref(), Duration::from_secs(5), shutdown.clone());
        let consuming = consumer::run(consumer, applier, shutdown.clone());
        let answering = queries::serve(self.client.clone(), queries, shutdown);
        let (http, (), answering, (), ()) = tokio::join!(
            http.into_future(),
            consuming,
            answering,
            notices,
            publishing
        );
        let _ = self.client.flush().await;
        http?;
        answering
    }
}

/// Subscribes to the BL services' accepted and parked notices, so a command shows as
/// `accepted` before its event is projected, and as `dead-lettered` while it is parked.
/// Returns the task that applies them.
async fn listen_for_notices<S: ReadModelStore>(
    client: async_nats::Client,
    store: Arc<S>,
    shutdown: CancellationToken,
) -> Result<impl Future<Output = ()>> {
    use futures::StreamExt;
    let subscribe = |subject| {
        let client = client.clone();
        async move {
            client
                .subscribe(subject)
                .await
                .map_err(|e| Error::NatsService(e.to_string()))
        }
    };
    let accepted = subscribe(subjects::COMMAND_ACCEPTED).await?;
    let parked = subscribe(subjects::COMMAND_PARKED).await?;
    let mut notices = futures::stream::select(accepted, parked);
    Ok(async move {
        loop {
            let notice = tokio::select! {
                () = shutdown.cancelled() => return,
                notice = notices.next() => notice,
            };
            let Some(notice) = notice else { return };
            apply_notice(store.as_ref(), &notice).await;
        }
    })
}

async fn apply_notice<S: ReadModelStore>(store: &S, notice: &async_nats::Message) {
    let applied = if notice.subject.as_str() == subjects::COMMAND_PARKED {
        match serde_json::from_slice(&notice.payload) {
            Ok(n) => store.note_parked(n).await,
            Err(e) => Err(Error::Store(e.to_string())),
        }
    } else {
        match serde_json::from_slice(&notice.payload) {
            Ok(n) => store.note_accepted(n).await,
            Err(e) => Err(Error::Store(e.to_string())),
        }
    };
    if let Err(e) = applied {
        tracing::warn!(subject = %notice.subject, error = %e, "notice not recorded");
    }
}
