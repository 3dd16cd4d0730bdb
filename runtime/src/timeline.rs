//! Recording the steps of a command for its timeline. Each component gathers the steps it
//! takes for one request in a [`Trail`] and queues them as one
//! [`contracts::timeline::TimelineNotice`] once the request is answered; a task publishes
//! the queued notices in batches on core NATS, so the accept path never waits for them,
//! whether the timeline's store or the stream behind it is up or not. A JetStream stream keeps the
//! notices for the timeline's retention; the projections store them from there, and catch
//! up after their store comes back.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use async_nats::jetstream::{self, stream};

mod batcher;

use batcher::Batcher;
use contracts::{
    Names,
    timeline::{CommandIds, Component, Step, StepKind, TimelineNotice},
};

/// The timeline's stream could not be created or updated.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the timeline stream {stream}: {source}")]
pub struct StreamUnavailable {
    stream: String,
    source: jetstream::context::CreateStreamError,
}

/// Settings of the timeline, shared by every service.
#[derive(Debug, Clone, clap::Args)]
pub struct TimelineArgs {
    /// Record command timelines (`on` or `off`). Off, no component publishes steps and the
    /// timeline endpoints find nothing; for measuring what the timeline costs.
    #[arg(long, global = true, env = "ACKGATE_TIMELINE", default_value = "on", value_parser = on_off)]
    pub timeline: bool,
    /// How long timeline steps are kept (hours), in the stream and in the store.
    #[arg(long, global = true, env = "ACKGATE_TIMELINE_RETENTION_HOURS", default_value = "168", value_parser = hours)]
    pub timeline_retention: Duration,
    /// This instance's name in timelines (default `<host>:<pid>`).
    #[arg(long, global = true, env = "ACKGATE_INSTANCE")]
    pub instance: Option<String>,
}

impl TimelineArgs {
    /// The configured instance name, or `<host>:<pid>`.
    pub fn instance_name(&self) -> String {
        self.instance.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "localhost".to_owned());
            format!("{host}:{}", std::process::id())
        })
    }
}

fn on_off(raw: &str) -> Result<bool, String> {
    match raw {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        other => Err(format!("expected on or off, not {other:?}")),
    }
}

fn hours(raw: &str) -> Result<Duration, String> {
    match raw.parse::<u64>() {
        Ok(0) => Err("retention must be at least one hour".to_owned()),
        Ok(h) => Ok(Duration::from_secs(h * 3600)),
        Err(e) => Err(format!("expected hours: {e}")),
    }
}

/// The stream that keeps timeline notices, created (or its retention updated) by every
/// service at start, so notices are kept whichever service starts first.
pub async fn ensure_stream(
    client: &async_nats::Client,
    names: &Names,
    retention: Duration,
) -> Result<(), StreamUnavailable> {
    let config = stream::Config {
        name: names.timeline_stream.clone(),
        subjects: vec![names.timeline_steps.clone()],
        max_age: retention,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        description: Some("Ackgate command timeline steps".to_owned()),
        ..Default::default()
    };
    let js = jetstream::new(client.clone());
    js.create_or_update_stream(config)
        .await
        .map(|_| ())
        .map_err(|source| StreamUnavailable {
            stream: names.timeline_stream.clone(),
            source,
        })
}

/// Publishes one component's trails; cheap to clone. Off, it drops every trail.
#[derive(Clone)]
pub struct Timeline {
    inner: Option<Arc<Publisher>>,
}

struct Publisher {
    batcher: Batcher,
    component: Component,
    instance: String,
}

impl Timeline {
    /// Publishes `component`'s steps on the namespace's timeline subject, ensuring the
    /// stream first; off when the settings say so.
    pub async fn open(
        client: &async_nats::Client,
        names: &Names,
        args: &TimelineArgs,
        component: Component,
    ) -> Result<Self, StreamUnavailable> {
        if !args.timeline {
            return Ok(Self::off());
        }
        ensure_stream(client, names, args.timeline_retention).await?;
        Ok(Self {
            inner: Some(Arc::new(Publisher {
                batcher: Batcher::spawn(client.clone(), names.timeline_steps.clone().into()),
                component,
                instance: args.instance_name(),
            })),
        })
    }

    /// Records nothing.
    pub fn off() -> Self {
        Self { inner: None }
    }

    /// Whether steps are recorded at all (skip gathering them when not).
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// A new trail for the request `correlation_id`.
    pub fn trail(&self, correlation_id: &str) -> Trail {
        Trail {
            inner: self.is_on().then(|| {
                Arc::new(Mutex::new(Gathered {
                    correlation_id: correlation_id.to_owned(),
                    ..Gathered::default()
                }))
            }),
        }
    }

    /// Queues the trail's steps (if any) for publishing in the background.
    pub fn publish(&self, trail: &Trail) {
        let (Some(publisher), Some(gathered)) = (&self.inner, trail.take()) else {
            return;
        };
        let notice = TimelineNotice {
            correlation_id: gathered.correlation_id,
            command: gathered.command,
            component: publisher.component,
            instance: publisher.instance.clone(),
            steps: gathered.steps,
        };
        publisher.batcher.send(notice);
    }

    /// Publishes steps about a command this component did not take a request for (an
    /// event applied, parked or discarded), under its request's `correlation_id`.
    pub fn publish_steps(&self, correlation_id: &str, command: &CommandIds, steps: Vec<Step>) {
        let trail = self.trail(correlation_id);
        trail.with(|gathered| {
            gathered.command = command.clone();
            gathered.steps = steps;
        });
        self.publish(&trail);
    }
}

/// The steps one component takes for one request, gathered as it goes. Clones share the
/// same steps; a trail of a timeline that is off gathers nothing.
#[derive(Clone, Default)]
pub struct Trail {
    inner: Option<Arc<Mutex<Gathered>>>,
}

impl std::fmt::Debug for Trail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trail").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Gathered {
    correlation_id: String,
    command: CommandIds,
    steps: Vec<Step>,
}

impl Trail {
    /// Records that `kind` happened now.
    pub fn step(&self, kind: StepKind) {
        self.push(Step::now(kind));
    }

    /// Records a step stamped elsewhere.
    pub fn push(&self, step: Step) {
        self.with(|gathered| gathered.steps.push(step));
    }

    /// Names the command, as far as it is known (`None` leaves a part as it was).
    pub fn identify(
        &self,
        command_id: Option<&str>,
        command_type: Option<&str>,
        aggregate_id: Option<&str>,
    ) {
        self.with(|gathered| {
            let set = |slot: &mut Option<String>, value: Option<&str>| {
                if let Some(value) = value {
                    *slot = Some(value.to_owned());
                }
            };
            let command = &mut gathered.command;
            set(&mut command.command_id, command_id);
            set(&mut command.command_type, command_type);
            set(&mut command.aggregate_id, aggregate_id);
        });
    }

    fn with(&self, change: impl FnOnce(&mut Gathered)) {
        if let Some(inner) = &self.inner {
            change(&mut inner.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }

    fn take(&self) -> Option<Gathered> {
        let inner = self.inner.as_ref()?;
        let mut gathered = inner.lock().unwrap_or_else(PoisonError::into_inner);
        if gathered.steps.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut *gathered))
    }
}
