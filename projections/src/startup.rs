//! Wiring: connect, consume, answer queries and health until shutdown.

use std::sync::Arc;

use contracts::{
    runtime::{health_router, nats},
    subjects, topics,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    Error, Result, Settings,
    consumer::{self, EventConsumer},
    queries,
    store::ReadModels,
};

/// A built, not yet running, projections process.
pub struct Application {
    client: async_nats::Client,
    consumer: EventConsumer,
    models: Arc<ReadModels>,
    listener: TcpListener,
}

impl Application {
    /// Connects to NATS, joins the consumer group and binds the health endpoint.
    pub async fn build(settings: Settings) -> Result<Self> {
        let client = nats::connect(&settings.common.nats_url, "ackgate-projections").await?;
        let models = Arc::new(ReadModels::default());
        let consumer = consumer::create_consumer(
            &settings.kafka.kafka_bootstrap,
            &settings.group_id,
            topics::OFFICER_EVENTS,
            Arc::clone(&models),
        )?;
        let listener = TcpListener::bind(settings.http_addr).await?;
        Ok(Self {
            client,
            consumer,
            models,
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
        let notices = listen_for_notices(
            self.client.clone(),
            Arc::clone(&self.models),
            shutdown.clone(),
        )
        .await?;
        let ready = nats::nats_readiness(self.client.clone());
        let http = axum::serve(self.listener, health_router("projections", ready))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let consuming = consumer::run(self.consumer, Arc::clone(&self.models), shutdown.clone());
        let answering = queries::serve(self.client.clone(), self.models, shutdown);
        let (http, (), answering, ()) =
            tokio::join!(http.into_future(), consuming, answering, notices);
        let _ = self.client.flush().await;
        http?;
        answering
    }
}

/// Subscribes to the BL services' accepted and parked notices, so a command shows as
/// `accepted` before its event is projected, and as `dead-lettered` while it is parked.
/// Returns the task that applies them.
async fn listen_for_notices(
    client: async_nats::Client,
    models: Arc<ReadModels>,
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
            apply_notice(&models, &notice);
        }
    })
}

fn apply_notice(models: &ReadModels, notice: &async_nats::Message) {
    let applied = if notice.subject.as_str() == subjects::COMMAND_PARKED {
        serde_json::from_slice(&notice.payload).map(|n| models.note_parked(n))
    } else {
        serde_json::from_slice(&notice.payload).map(|n| models.note_accepted(n))
    };
    if let Err(e) = applied {
        tracing::warn!(subject = %notice.subject, error = %e, "malformed notice ignored");
    }
}
