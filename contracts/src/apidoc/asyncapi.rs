//! AsyncAPI 3.0 for the messaging side: each business-logic command's NATS request subject
//! (with its accepted-or-problem reply), each events topic with the envelope of every event
//! version it holds, and the notice subjects. Names are base names: a deployment namespace
//! prefixes them (see [`crate::Namespace`]).

use serde_json::{Map, Value, json};

use super::{command_schema_name, component_schemas, schema_ref, short_name};
use crate::{Catalog, CatalogEntry, catalog::CommandPath, headers::message, schema, subjects};

/// The AsyncAPI document of the subjects and topics of `catalog`, as JSON.
pub fn asyncapi(catalog: &Catalog, version: &str) -> Value {
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for entry in catalog.entries() {
        let name = command_schema_name(entry).replace('.', "-");
        messages.insert(format!("{name}-command"), command_message(entry));
        messages.insert(format!("{name}-event"), event_message(entry));
        let topic_channel = channel_name(&entry.spec.topic);
        let topic = channels.entry(topic_channel.clone()).or_insert_with(|| {
            json!({ "address": entry.spec.topic, "servers": [{ "$ref": "#/servers/kafka" }],
                "description": "Events, keyed by aggregate id.", "messages": {} })
        });
        topic["messages"][format!("{name}-event")] = message_ref(&format!("{name}-event"));
        operations.insert(
            format!("publish-{name}-event"),
            json!({ "action": "send", "channel": channel_ref(&topic_channel),
                "summary": format!("{} is accepted: its event is written.", entry.spec.label()),
                "messages": [{ "$ref": format!("#/channels/{topic_channel}/messages/{name}-event") }] }),
        );
        let Some(subject) = entry
            .spec
            .subject
            .as_ref()
            .filter(|_| entry.spec.path == CommandPath::BusinessLogic)
        else {
            continue;
        };
        let command_channel = channel_name(subject);
        channels.insert(
            command_channel.clone(),
            json!({ "address": subject, "servers": [{ "$ref": "#/servers/nats" }],
                "description": entry.spec.description,
                "messages": { format!("{name}-command"): message_ref(&format!("{name}-command")) } }),
        );
        operations.insert(
            format!("handle-{name}"),
            json!({ "action": "receive", "channel": channel_ref(&command_channel),
                "summary": format!("Decide {}: a NATS request, answered only once its event is in Kafka.", entry.spec.label()),
                "messages": [{ "$ref": format!("#/channels/{command_channel}/messages/{name}-command") }],
                "reply": {
                    "address": { "location": "$message.header#/replyTo", "description": "The requester's inbox." },
                    "messages": [message_ref("accepted"), message_ref("problem")],
                } }),
        );
    }
    messages.insert(
        "accepted".to_owned(),
        reply_message(
            "The command's event is in Kafka.",
            schema::COMMAND_ACCEPTED_V1.id,
        ),
    );
    messages.insert(
        "problem".to_owned(),
        reply_message(
            "Refused, or failed; the Nats-Service-Error-Code header holds the HTTP status.",
            schema::PROBLEM_V1.id,
        ),
    );
    notices(&mut channels, &mut operations);
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Ackgate messaging",
            "version": version,
            "description": "The NATS subjects the business-logic services answer and the Kafka topics \
                they write, from the command catalog. A deployment namespace prefixes every address.",
        },
        "servers": {
            "nats": { "host": "localhost:4222", "protocol": "nats", "description": "Requests and notices." },
            "kafka": { "host": "localhost:9092", "protocol": "kafka", "description": "Events: the source of truth." },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": component_schemas(catalog),
            "messages": messages,
        },
    })
}

/// The notices the status read model listens to (fire and forget).
fn notices(channels: &mut Map<String, Value>, operations: &mut Map<String, Value>) {
    for (subject, summary) in [
        (
            subjects::COMMAND_ACCEPTED,
            "A command's event is in Kafka (before it is projected).",
        ),
        (
            subjects::COMMAND_PARKED,
            "A command is parked in the command dead-letter queue.",
        ),
    ] {
        let channel = channel_name(subject);
        channels.insert(
            channel.clone(),
            json!({ "address": subject, "servers": [{ "$ref": "#/servers/nats" }], "description": summary,
                "messages": { "notice": { "name": "notice", "contentType": "application/json",
                    "payload": { "type": "object" } } } }),
        );
        operations.insert(
            format!("notify-{channel}"),
            json!({ "action": "send", "channel": channel_ref(&channel), "summary": summary }),
        );
    }
}

fn command_message(entry: &CatalogEntry) -> Value {
    let mut message = json!({
        "name": format!("{}-v{}", entry.spec.command, entry.spec.version),
        "title": entry.spec.label(),
        "summary": entry.spec.description,
        "contentType": "application/json",
        "headers": id_headers(&[message::CORRELATION_ID, message::COMMAND_ID, message::TRACEPARENT, message::IF_MATCH, message::REDRIVE]),
        "payload": schema_ref(&command_schema_name(entry)),
    });
    if let Some(example) = &entry.spec.example {
        message["examples"] = json!([{ "name": "valid", "payload": example }]);
    }
    message
}

fn event_message(entry: &CatalogEntry) -> Value {
    json!({
        "name": format!("{}-v{}", entry.spec.event, entry.spec.version),
        "title": format!("{} v{}", entry.spec.event, entry.spec.version),
        "summary": format!("{} was accepted. Key: the aggregate id ({}).", entry.spec.label(), entry.spec.aggregate.id_pointer),
        "contentType": "application/json",
        "headers": id_headers(&[message::EVENT_ID, message::EVENT_TYPE, message::SCHEMA_VERSION, message::CORRELATION_ID, message::COMMAND_ID, message::TRACEPARENT]),
        "payload": {
            "allOf": [
                schema_ref(&short_name(schema::EVENT_ENVELOPE_V1.id)),
                { "properties": {
                    "eventType": { "const": entry.spec.event },
                    "schemaVersion": { "const": entry.spec.version },
                    "payload": schema_ref(&command_schema_name(entry)),
                } },
            ],
        },
    })
}

fn reply_message(summary: &str, schema_id: &str) -> Value {
    json!({ "summary": summary, "contentType": "application/json",
        "headers": id_headers(&[message::CORRELATION_ID, message::REPLAYED, message::SERVICE_ERROR_CODE, message::SERVICE_ERROR]),
        "payload": schema_ref(&short_name(schema_id)) })
}

fn id_headers(names: &[&str]) -> Value {
    let properties: Map<String, Value> = names
        .iter()
        .map(|name| ((*name).to_owned(), json!({ "type": "string" })))
        .collect();
    json!({ "type": "object", "properties": properties })
}

/// A channel id for an address: letters, digits and `-`.
fn channel_name(address: &str) -> String {
    address
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn channel_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/channels/{name}") })
}

fn message_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/messages/{name}") })
}
