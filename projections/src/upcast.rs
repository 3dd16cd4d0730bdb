//! Upcasting: every older version of an event's payload is read as its command's current
//! version, here and nowhere else, so live application and a rebuild of a topic holding
//! several versions build the same read models.

use contracts::officer::REGISTER_OFFICER;
use serde_json::Value;

/// `payload`, written by version `version` of `command`, as the current version reads it.
pub fn to_current(command: &str, version: u32, payload: Value) -> Value {
    match (command, version) {
        // Version 2 adds the optional `phone` and `precinct`: a version 1 payload is a
        // version 2 payload without them, as it stands.
        (REGISTER_OFFICER, 1) => payload,
        _ => payload,
    }
}

#[cfg(test)]
mod tests {
    use contracts::officer::RegisterOfficer;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_version_1_registration_reads_as_version_2_without_phone_or_precinct() {
        let v1 = json!({ "badgeNumber": "B-1042", "firstName": "Ana", "lastName": "Reyes",
            "rank": "sergeant", "email": "ana@example.org", "hireDate": "2019-04-01" });
        let current: RegisterOfficer =
            serde_json::from_value(to_current(REGISTER_OFFICER, 1, v1)).expect("reads");
        assert_eq!((current.phone, current.precinct), (None, None));
    }
}
