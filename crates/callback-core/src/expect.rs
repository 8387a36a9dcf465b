//! What counts as success for one task. A receiver that answers 200 with
//! `{"code": 500}` has not accepted the callback; `expect` lets a task say so.

use serde::{Deserialize, Serialize};

/// A JSON field that must hold a given value, e.g. `/code` equals `0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonExpectation {
    /// An RFC 6901 JSON pointer, e.g. `/data/code`.
    pub pointer: String,
    pub equals: serde_json::Value,
}

/// Every condition given must hold; none given means "any 2xx".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Expectation {
    /// Status codes that count as success; `None` means any 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Vec<u16>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// Compared after trimming white space at both ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_equals: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<JsonExpectation>,
}

impl Expectation {
    /// Checks the parts that cannot be checked by types alone.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Some(codes) = &self.status {
            if codes.is_empty() {
                return Err(("expect.status".into(), "must list at least one code".into()));
            }
            if let Some(bad) = codes.iter().find(|c| !(100..=599).contains(*c)) {
                return Err((
                    "expect.status".into(),
                    format!("{bad} is not an HTTP status code"),
                ));
            }
        }
        if let Some(json) = &self.json {
            if !(json.pointer.is_empty() || json.pointer.starts_with('/')) {
                return Err((
                    "expect.json.pointer".into(),
                    "must be a JSON pointer starting with '/'".into(),
                ));
            }
        }
        Ok(())
    }

    /// `true` when the body must be read to decide success.
    pub fn needs_body(&self) -> bool {
        self.body_contains.is_some() || self.body_equals.is_some() || self.json.is_some()
    }

    /// Decides whether a response is a success; the error says, in words,
    /// which condition failed.
    pub fn check(&self, status: u16, body: &[u8]) -> Result<(), String> {
        match &self.status {
            Some(codes) if !codes.contains(&status) => {
                return Err(format!("status {status} is not one of {codes:?}"));
            }
            None if !(200..300).contains(&status) => {
                return Err(format!("status {status} is not 2xx"));
            }
            _ => {}
        }
        let text = String::from_utf8_lossy(body);
        if let Some(needle) = &self.body_contains {
            if !text.contains(needle.as_str()) {
                return Err(format!(
                    "expectation not met: body does not contain {needle:?}"
                ));
            }
        }
        if let Some(expected) = &self.body_equals {
            if text.trim() != expected.trim() {
                return Err(format!("expectation not met: body is not {expected:?}"));
            }
        }
        if let Some(json) = &self.json {
            let value: serde_json::Value = serde_json::from_slice(body)
                .map_err(|_| "expectation not met: body is not JSON".to_string())?;
            match value.pointer(&json.pointer) {
                Some(found) if *found == json.equals => {}
                Some(found) => {
                    return Err(format!(
                        "expectation not met: {} is {found}, expected {}",
                        json.pointer, json.equals
                    ))
                }
                None => return Err(format!("expectation not met: {} is missing", json.pointer)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_expectation_accepts_any_2xx_only() {
        let e = Expectation::default();
        assert!(e.check(200, b"").is_ok());
        assert!(e.check(204, b"").is_ok());
        assert!(e.check(302, b"").is_err());
        assert!(e.check(500, b"").is_err());
    }

    #[test]
    fn explicit_status_list_replaces_the_2xx_rule() {
        let e = Expectation {
            status: Some(vec![200, 409]),
            ..Default::default()
        };
        assert!(e.check(409, b"").is_ok());
        assert!(e.check(201, b"").is_err());
    }

    #[test]
    fn body_contains_and_equals_are_checked() {
        let contains = Expectation {
            body_contains: Some("success".into()),
            ..Default::default()
        };
        assert!(contains.check(200, b"result: success!").is_ok());
        assert!(contains.check(200, b"fail").is_err());
        let equals = Expectation {
            body_equals: Some("success".into()),
            ..Default::default()
        };
        assert!(equals.check(200, b"  success\n").is_ok());
        assert!(equals.check(200, b"successful").is_err());
    }

    #[test]
    fn json_pointer_must_hold_the_expected_value() {
        let e = Expectation {
            json: Some(JsonExpectation {
                pointer: "/code".into(),
                equals: json!(0),
            }),
            ..Default::default()
        };
        assert!(e.check(200, br#"{"code":0}"#).is_ok());
        let err = e.check(200, br#"{"code":1}"#).unwrap_err();
        assert!(err.contains("/code is 1"), "{err}");
        assert!(e.check(200, br#"{"other":0}"#).is_err());
        assert!(e.check(200, b"not json").is_err());
    }

    #[test]
    fn all_conditions_must_hold_together() {
        let e = Expectation {
            status: Some(vec![200]),
            body_contains: Some("ok".into()),
            ..Default::default()
        };
        assert!(e.check(200, b"ok").is_ok());
        assert!(e.check(201, b"ok").is_err());
        assert!(e.check(200, b"no").is_err());
    }

    #[test]
    fn validation_rejects_empty_status_list_and_bad_pointer() {
        let empty = Expectation {
            status: Some(vec![]),
            ..Default::default()
        };
        assert_eq!(empty.validate().unwrap_err().0, "expect.status");
        let bad = Expectation {
            json: Some(JsonExpectation {
                pointer: "code".into(),
                equals: json!(0),
            }),
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "expect.json.pointer");
    }
}
