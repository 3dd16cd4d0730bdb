//! What happens to an officer after registration: contact changes, rank changes, suspension,
//! reinstatement and retirement. Each command's event carries the command as its payload.

use serde::{Deserialize, Serialize};
use time::Date;

use super::{Rank, full_date};

/// Command name of [`UpdateOfficerContact`].
pub const UPDATE_OFFICER_CONTACT: &str = "UpdateOfficerContact";
/// Command name of [`ChangeOfficerRank`].
pub const CHANGE_OFFICER_RANK: &str = "ChangeOfficerRank";
/// Command name of [`SuspendOfficer`].
pub const SUSPEND_OFFICER: &str = "SuspendOfficer";
/// Command name of [`ReinstateOfficer`].
pub const REINSTATE_OFFICER: &str = "ReinstateOfficer";
/// Command name of [`RetireOfficer`].
pub const RETIRE_OFFICER: &str = "RetireOfficer";

/// Where an officer stands. `Retired` is final: a retired officer takes no further command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OfficerStatus {
    /// On duty.
    Active,
    /// Off duty until reinstated.
    Suspended,
    /// Left the service; no further command is accepted.
    Retired,
}

impl OfficerStatus {
    /// The lowercase name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Retired => "retired",
        }
    }
}

/// New contact details; at least one of them (schema `update-officer-contact.v1.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateOfficerContact {
    /// The officer.
    pub badge_number: String,
    /// New work e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// New phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// A promotion or demotion (schema `change-officer-rank.v1.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeOfficerRank {
    /// The officer.
    pub badge_number: String,
    /// The new rank.
    pub rank: Rank,
}

/// Take an active officer off duty (schema `suspend-officer.v1.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuspendOfficer {
    /// The officer.
    pub badge_number: String,
    /// Why, for the record.
    pub reason: String,
}

/// Return a suspended officer to duty (schema `reinstate-officer.v1.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReinstateOfficer {
    /// The officer.
    pub badge_number: String,
    /// A remark, for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Retire an officer, for good (schema `retire-officer.v1.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetireOfficer {
    /// The officer.
    pub badge_number: String,
    /// Last day of service.
    #[serde(with = "full_date")]
    pub retired_on: Date,
}
