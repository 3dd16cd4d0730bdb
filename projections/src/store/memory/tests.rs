//! The in-memory store's rules: dedupe, first registration wins, notices never downgrade,
//! keyset pages, and per-key parking with re-drive.

use contracts::{
    EventEnvelope,
    deadletter::{PoisonCode, RedriveRequest},
    officer::{OfficerListQuery, REGISTER_OFFICER, Rank, RegisterOfficer, encode_cursor},
    status::{CommandParkedNotice, CommandState, CommandStatusQuery},
};
use time::OffsetDateTime;

use super::*;

const POLICY: ApplyPolicy = ApplyPolicy {
    attempts: 1,
    backoff: std::time::Duration::ZERO,
};

fn registration(command_id: &str, badge: &str) -> Vec<u8> {
    let event = EventEnvelope {
        event_id: contracts::ids::event_id(REGISTER_OFFICER, command_id),
        event_type: "RegisterOfficerRequested".to_owned(),
        schema_version: 1,
        correlation_id: format!("corr-{command_id}"),
        command_id: command_id.to_owned(),
        aggregate_id: badge.to_owned(),
        aggregate_version: None,
        occurred_at: OffsetDateTime::UNIX_EPOCH,
        payload: RegisterOfficer {
            badge_number: badge.to_owned(),
            first_name: "Ana".to_owned(),
            last_name: format!("Reyes{badge}"),
            rank: Rank::Sergeant,
            email: "ana@example.org".to_owned(),
            hire_date: time::macros::date!(2019 - 04 - 01),
            phone: None,
            precinct: None,
        },
    };
    serde_json::to_vec(&event).expect("json")
}

fn store() -> MemoryStore {
    MemoryStore::new(crate::event::Decoder::shipped().expect("the shipped catalog"))
}

/// A lifecycle event of `command` (e.g. `SuspendOfficer`) on `badge`, at `version`.
fn change(
    command: &str,
    command_id: &str,
    badge: &str,
    version: u64,
    payload: serde_json::Value,
) -> Vec<u8> {
    let event = EventEnvelope {
        event_id: contracts::ids::event_id(command, command_id),
        event_type: format!("{command}Requested"),
        schema_version: 1,
        correlation_id: format!("corr-{command_id}"),
        command_id: command_id.to_owned(),
        aggregate_id: badge.to_owned(),
        aggregate_version: Some(version),
        occurred_at: OffsetDateTime::UNIX_EPOCH + time::Duration::days(1),
        payload,
    };
    serde_json::to_vec(&event).expect("json")
}

fn record(offset: i64, key: &str, payload: Vec<u8>) -> SourceRecord {
    SourceRecord {
        position: EventPosition {
            topic: "t".to_owned(),
            partition: 0,
            offset,
        },
        key: key.to_owned(),
        payload,
        headers: Vec::new(),
        timestamp_ms: None,
    }
}

async fn apply(store: &MemoryStore, records: &[SourceRecord]) -> Vec<Outcome> {
    store.apply_batch(records, POLICY).await.expect("applies")
}

fn by_correlation(id: &str) -> CommandStatusQuery {
    CommandStatusQuery::CorrelationId(id.to_owned())
}

#[tokio::test]
async fn a_duplicate_changes_nothing_and_a_re_read_is_skipped_by_offset() {
    let store = store();
    let first = record(0, "B-1", registration("c1", "B-1"));
    let duplicate = record(1, "B-1", registration("c1", "B-1"));
    let outcomes = apply(&store, &[first.clone(), duplicate]).await;
    assert_eq!(outcomes, [Outcome::Registered, Outcome::Duplicate]);
    assert_eq!(apply(&store, &[first]).await, [Outcome::AlreadyApplied]);
    assert_eq!(store.offsets("t").await.expect("offsets").get(&0), Some(&2));
    let officer = store
        .officer("B-1")
        .await
        .expect("reads")
        .expect("registered");
    assert_eq!(officer.history.len(), 1);
    let stats = store.stats().await.expect("stats");
    assert_eq!((stats.applied_events, stats.duplicate_records), (1, 1));
}

#[tokio::test]
async fn the_first_registration_of_a_badge_wins_and_both_are_in_its_history() {
    let store = store();
    let outcomes = apply(
        &store,
        &[
            record(0, "B-1", registration("c1", "B-1")),
            record(1, "B-1", registration("c2", "B-1")),
        ],
    )
    .await;
    assert_eq!(outcomes, [Outcome::Registered, Outcome::Superseded]);
    let detail = store.officer("B-1").await.expect("reads").expect("kept");
    assert_eq!(detail.officer.command_id, "c1");
    assert_eq!(detail.history.len(), 2);
    let loser = store
        .command_status(&CommandStatusQuery::CommandId("c2".to_owned()))
        .await;
    assert_eq!(
        loser.expect("reads").expect("tracked").status,
        CommandState::Superseded
    );
}

#[tokio::test]
async fn a_late_parked_notice_never_downgrades_a_projected_command() {
    let store = store();
    apply(&store, &[record(0, "B-1", registration("c1", "B-1"))]).await;
    let notice = CommandParkedNotice {
        correlation_id: "corr-c1".to_owned(),
        command_id: "c1".to_owned(),
        command_type: REGISTER_OFFICER.to_owned(),
        aggregate_id: "B-1".to_owned(),
        code: contracts::ErrorCode::KafkaUnavailable,
        parked_at: OffsetDateTime::UNIX_EPOCH,
    };
    store.note_parked(notice).await.expect("noted");
    let status = store
        .command_status(&by_correlation("corr-c1"))
        .await
        .expect("reads");
    assert_eq!(status.expect("tracked").status, CommandState::Projected);
}

#[tokio::test]
async fn pages_continue_after_their_cursor_even_when_officers_are_added_before_it() {
    let store = store();
    let badges = ["B-10", "B-20", "B-30", "B-40"];
    let records: Vec<SourceRecord> = badges
        .iter()
        .enumerate()
        .map(|(i, b)| record(i as i64, b, registration(&format!("c{i}"), b)))
        .collect();
    apply(&store, &records).await;
    let first = OfficerListQuery {
        limit: Some(2),
        ..OfficerListQuery::default()
    };
    let page = store.list_officers(&first).await.expect("lists");
    assert_eq!(page.next_cursor, Some(encode_cursor("B-20")));
    apply(&store, &[record(4, "B-15", registration("c9", "B-15"))]).await;
    let second = OfficerListQuery {
        cursor: page.next_cursor,
        ..first
    };
    let page = store.list_officers(&second).await.expect("lists");
    let listed: Vec<&str> = page
        .items
        .iter()
        .map(|o| o.officer.badge_number.as_str())
        .collect();
    assert_eq!(listed, ["B-30", "B-40"]);
    assert_eq!(page.next_cursor, None);
}

#[tokio::test]
async fn a_poison_event_parks_its_key_and_a_redrive_after_a_fix_applies_in_order() {
    let store = store();
    let outcomes = apply(
        &store,
        &[
            record(0, "B-1", b"{not json".to_vec()),
            record(1, "B-1", registration("c1", "B-1")),
            record(2, "B-2", registration("c2", "B-2")),
        ],
    )
    .await;
    assert_eq!(
        outcomes,
        [Outcome::Parked, Outcome::Parked, Outcome::Registered]
    );
    let parked = store.dead_letters(Some("B-1")).await.expect("lists");
    let codes: Vec<PoisonCode> = parked.iter().map(|p| p.code).collect();
    assert_eq!(
        codes,
        [PoisonCode::Unparseable, PoisonCode::BlockedByEarlierEvent]
    );
    assert_eq!(parked[1].blocked_by.as_ref().map(|p| p.offset), Some(0));
    let redrive = RedriveRequest {
        keys: vec!["B-1".to_owned()],
        all: false,
    };
    let report = store
        .redrive(&redrive, POLICY)
        .await
        .expect("redrives")
        .report;
    assert_eq!(
        (report.applied, report.still_parked),
        (0, 2),
        "still unparseable"
    );
    store.write().replace_payload(0, registration("c0", "B-1"));
    let redriven = store.redrive(&redrive, POLICY).await.expect("redrives");
    assert_eq!(
        redriven.applied.len(),
        2,
        "both events, with their outcomes"
    );
    let report = redriven.report;
    assert_eq!((report.applied, report.still_parked), (2, 0));
    assert_eq!(report.released_keys, ["B-1"]);
    let detail = store
        .officer("B-1")
        .await
        .expect("reads")
        .expect("registered");
    assert_eq!(
        detail.officer.command_id, "c0",
        "the earlier event applied first"
    );
    assert_eq!(detail.history.len(), 2);
}

#[tokio::test]
async fn a_batch_past_the_stored_offset_is_refused_whole_until_the_gap_is_accepted() {
    let store = store();
    apply(&store, &[record(0, "B-1", registration("c1", "B-1"))]).await;
    let late = [record(5, "B-2", registration("c2", "B-2"))];
    let refused = store.apply_batch(&late, POLICY).await;
    assert!(
        matches!(
            refused,
            Err(crate::Error::Gap {
                expected: 1,
                found: 5,
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(store.officer("B-2").await.expect("reads").is_none());
    store.advance("t", 0, 5).await.expect("advances");
    assert_eq!(apply(&store, &late).await, [Outcome::Registered]);
}

#[tokio::test]
async fn lifecycle_events_change_the_officer_and_count_its_version() {
    let store = store();
    let suspend = serde_json::json!({ "badgeNumber": "B-7", "reason": "Review." });
    let rank = serde_json::json!({ "badgeNumber": "B-7", "rank": "captain" });
    let retire = serde_json::json!({ "badgeNumber": "B-7", "retiredOn": "2026-01-31" });
    let records = [
        record(0, "B-7", registration("c-1", "B-7")),
        record(1, "B-7", change("SuspendOfficer", "c-2", "B-7", 2, suspend)),
        record(2, "B-7", change("ChangeOfficerRank", "c-3", "B-7", 3, rank)),
        record(3, "B-7", change("RetireOfficer", "c-4", "B-7", 4, retire)),
    ];
    let outcomes = apply(&store, &records).await;
    assert_eq!(
        outcomes,
        [
            Outcome::Registered,
            Outcome::Changed,
            Outcome::Changed,
            Outcome::Changed
        ]
    );
    let detail = store.officer("B-7").await.expect("reads").expect("found");
    assert_eq!(detail.officer.version, 4);
    assert_eq!(
        detail.officer.status,
        contracts::officer::OfficerStatus::Retired
    );
    assert_eq!(detail.officer.officer.rank, Rank::Captain);
    assert_eq!(detail.officer.suspension_reason, None);
    assert_eq!(detail.history.len(), 4);
    let status = store.command_status(&by_correlation("corr-c-3")).await;
    assert_eq!(
        status.expect("reads").expect("found").status,
        CommandState::Projected
    );
}

#[tokio::test]
async fn a_change_to_an_officer_the_read_model_lacks_is_parked() {
    let store = store();
    let suspend = serde_json::json!({ "badgeNumber": "B-8", "reason": "Review." });
    let records = [record(
        0,
        "B-8",
        change("SuspendOfficer", "c-1", "B-8", 2, suspend),
    )];
    assert_eq!(apply(&store, &records).await, [Outcome::Parked]);
    let parked = store.dead_letters(Some("B-8")).await.expect("reads");
    assert_eq!(parked[0].code, PoisonCode::HandlerFailed);
}
