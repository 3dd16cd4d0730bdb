//! Officers: registration (the badge must be unused) and the lifecycle after it, judged on
//! the officer's current state. A command on an officer that does not exist is refused, so
//! is any command on a retired officer (retirement is final), and so is a command that would
//! change nothing.

use contracts::{
    ErrorCode,
    officer::{
        CHANGE_OFFICER_RANK, ChangeOfficerRank, OfficerStatus, REGISTER_OFFICER, REINSTATE_OFFICER,
        RETIRE_OFFICER, Rank, RegisterOfficer, ReinstateOfficer, RetireOfficer, SUSPEND_OFFICER,
        SuspendOfficer, UPDATE_OFFICER_CONTACT, UpdateOfficerContact,
    },
};
use serde::{Deserialize, Serialize};

use crate::domain::{Handlers, Refusal, Rules};

/// Registers the officer handlers.
pub fn register(handlers: &mut Handlers) {
    handlers.add::<Register>();
    handlers.add::<UpdateContact>();
    handlers.add::<ChangeRank>();
    handlers.add::<Suspend>();
    handlers.add::<Reinstate>();
    handlers.add::<Retire>();
}

/// What the rules need to know about an officer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfficerState {
    /// Active, suspended or retired.
    pub status: OfficerStatus,
    /// Current rank.
    pub rank: Rank,
    /// Current e-mail address.
    pub email: String,
    /// Current phone number, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

const BADGE_UNUSED: &str = "badge-unused";
const OFFICER_EXISTS: &str = "officer-exists";
const NOT_RETIRED: &str = "not-retired";
const CHANGES_SOMETHING: &str = "changes-something";

/// The rules every lifecycle command shares: the officer exists and is not retired.
fn serving(badge: &str, state: Option<OfficerState>) -> Result<OfficerState, Refusal> {
    let officer = state.ok_or_else(|| {
        Refusal::new(
            ErrorCode::AggregateNotFound,
            format!("no officer holds badge number {badge}"),
        )
    })?;
    if officer.status == OfficerStatus::Retired {
        return Err(Refusal::new(
            ErrorCode::TransitionNotAllowed,
            format!("officer {badge} is retired; a retired officer takes no further command"),
        ));
    }
    Ok(officer)
}

/// A serving officer moved to `status`; `already` says why not when it is there already.
fn moved_to(
    badge: &str,
    state: Option<OfficerState>,
    status: OfficerStatus,
    already: &str,
) -> Result<OfficerState, Refusal> {
    let officer = serving(badge, state)?;
    if officer.status == status {
        return Err(no_change(badge, already));
    }
    Ok(OfficerState { status, ..officer })
}

fn no_change(badge: &str, what: &str) -> Refusal {
    Refusal::new(ErrorCode::NoChange, format!("officer {badge} {what}"))
}

struct Register;

impl Rules for Register {
    type Command = RegisterOfficer;
    type State = OfficerState;
    const COMMAND: &'static str = REGISTER_OFFICER;
    const RULES: &'static [&'static str] = &[BADGE_UNUSED];

    fn decide(
        command: RegisterOfficer,
        state: Option<OfficerState>,
    ) -> Result<OfficerState, Refusal> {
        if state.is_some() {
            let badge = &command.badge_number;
            return Err(Refusal::new(
                ErrorCode::BadgeAlreadyRegistered,
                format!("badge number {badge} is already registered to another officer"),
            ));
        }
        Ok(OfficerState {
            status: OfficerStatus::Active,
            rank: command.rank,
            email: command.email,
            phone: command.phone,
        })
    }
}

struct UpdateContact;

impl Rules for UpdateContact {
    type Command = UpdateOfficerContact;
    type State = OfficerState;
    const COMMAND: &'static str = UPDATE_OFFICER_CONTACT;
    const RULES: &'static [&'static str] = &[OFFICER_EXISTS, NOT_RETIRED, CHANGES_SOMETHING];

    fn decide(
        command: UpdateOfficerContact,
        state: Option<OfficerState>,
    ) -> Result<OfficerState, Refusal> {
        let mut officer = serving(&command.badge_number, state)?;
        let before = officer.clone();
        if let Some(email) = command.email {
            officer.email = email;
        }
        if command.phone.is_some() {
            officer.phone = command.phone;
        }
        if officer == before {
            return Err(no_change(
                &command.badge_number,
                "already has these contact details",
            ));
        }
        Ok(officer)
    }
}

struct ChangeRank;

impl Rules for ChangeRank {
    type Command = ChangeOfficerRank;
    type State = OfficerState;
    const COMMAND: &'static str = CHANGE_OFFICER_RANK;
    const RULES: &'static [&'static str] = &[OFFICER_EXISTS, NOT_RETIRED, CHANGES_SOMETHING];

    fn decide(
        command: ChangeOfficerRank,
        state: Option<OfficerState>,
    ) -> Result<OfficerState, Refusal> {
        let mut officer = serving(&command.badge_number, state)?;
        if officer.rank == command.rank {
            let holds = format!("already holds the rank {}", command.rank.as_str());
            return Err(no_change(&command.badge_number, &holds));
        }
        officer.rank = command.rank;
        Ok(officer)
    }
}

struct Suspend;

impl Rules for Suspend {
    type Command = SuspendOfficer;
    type State = OfficerState;
    const COMMAND: &'static str = SUSPEND_OFFICER;
    const RULES: &'static [&'static str] = &[OFFICER_EXISTS, NOT_RETIRED, CHANGES_SOMETHING];

    fn decide(
        command: SuspendOfficer,
        state: Option<OfficerState>,
    ) -> Result<OfficerState, Refusal> {
        let badge = &command.badge_number;
        moved_to(
            badge,
            state,
            OfficerStatus::Suspended,
            "is already suspended",
        )
    }
}

struct Reinstate;

impl Rules for Reinstate {
    type Command = ReinstateOfficer;
    type State = OfficerState;
    const COMMAND: &'static str = REINSTATE_OFFICER;
    const RULES: &'static [&'static str] = &[OFFICER_EXISTS, NOT_RETIRED, CHANGES_SOMETHING];

    fn decide(
        command: ReinstateOfficer,
        state: Option<OfficerState>,
    ) -> Result<OfficerState, Refusal> {
        let badge = &command.badge_number;
        moved_to(badge, state, OfficerStatus::Active, "is not suspended")
    }
}

struct Retire;

impl Rules for Retire {
    type Command = RetireOfficer;
    type State = OfficerState;
    const COMMAND: &'static str = RETIRE_OFFICER;
    const RULES: &'static [&'static str] = &[OFFICER_EXISTS, NOT_RETIRED];

    fn decide(
        command: RetireOfficer,
        state: Option<OfficerState>,
    ) -> Result<OfficerState, Refusal> {
        let officer = serving(&command.badge_number, state)?;
        Ok(OfficerState {
            status: OfficerStatus::Retired,
            ..officer
        })
    }
}

#[cfg(test)]
mod tests;
