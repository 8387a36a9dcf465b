//! Reading a JSON request body under a size limit, with errors that name
//! the offending field instead of a line and column.

use crate::ApiError;
use actix_web::http::header;
use actix_web::{web, HttpRequest};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// For a body read outside the API's own routes (no `ApiState`).
const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub async fn read_json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<T, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    // A client that sends its body slowly holds a connection and a buffer:
    // it gets the server's timeout, not its own pace.
    let timeout = req
        .app_data::<web::Data<crate::ApiState>>()
        .map_or(DEFAULT_BODY_TIMEOUT, |state| state.body_read_timeout);
    let body = tokio::time::timeout(timeout, payload.to_bytes_limited(limit))
        .await
        .map_err(|_| ApiError::RequestTimeout(timeout))?
        .map_err(|_| ApiError::PayloadTooLarge { limit })?
        .map_err(|e| ApiError::MalformedBody(format!("could not read the body: {e}")))?;
    if json_depth(&body) > MAX_JSON_DEPTH {
        return Err(ApiError::MalformedBody(format!(
            "the body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    parse_json(&body)
}

/// How deep a request body may nest arrays and objects. Task bodies are
/// stored and sent as they are (never parsed into a tree), so without
/// this a body of any depth would be accepted, and every consumer that
/// parses it later would pay for it.
pub const MAX_JSON_DEPTH: usize = 64;

/// The deepest nesting of arrays and objects in `json`, brackets inside
/// strings not counted. Malformed input is the parser's to refuse.
fn json_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in json {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Deserialises, reporting which field was wrong.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::MalformedBody(format!("the body is not valid JSON: {inner}"));
        }
        let message = inner.to_string();
        // serde_path_to_error ends the path at an unknown field itself, but
        // at the parent of a missing one, whose name is only in the message.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (missing, path.as_str()) {
            (Some(name), ".") => name.to_string(),
            (Some(name), parent) => format!("{parent}.{name}"),
            (None, ".") => "body".to_string(),
            (None, _) => path,
        };
        let mut errors = callback_core::ValidationErrors::default();
        errors.push(field, strip_position(&message));
        ApiError::Validation(errors)
    })
}

/// serde_json appends " at line L column C", which means nothing to a caller
/// that is told the field's name.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// For `#[serde(default, deserialize_with = "present")]` on an
/// `Option<Option<T>>`: tells a field given as `null` (clear it) from one
/// left out (keep it).
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        assert_eq!(json_depth(b"1"), 0);
        assert_eq!(json_depth(br#"{"a": [1, {"b": []}]}"#), 4);
        // An escaped quote does not end the string its brackets are in.
        assert_eq!(json_depth(br#"{"a": "[[[[\"{{"}"#), 1);
        assert_eq!(json_depth(&[b'['; 100]), 100);
    }

    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        count: u32,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        flag: bool,
    }

    fn field_of(err: ApiError) -> String {
        match err {
            ApiError::Validation(v) => v.0[0].field.clone(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn wrong_types_name_their_field() {
        let err = parse_json::<Sample>(br#"{"count": "x"}"#).unwrap_err();
        assert_eq!(field_of(err), "count");
        let err = parse_json::<Sample>(br#"{"count": 1, "inner": {"flag": 3}}"#).unwrap_err();
        assert_eq!(field_of(err), "inner.flag");
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = parse_json::<Sample>(br#"{"count": 1, "colour": 2}"#).unwrap_err();
        assert_eq!(field_of(err), "colour");
        let err =
            parse_json::<Sample>(br#"{"count": 1, "inner": {"flag": true, "x": 1}}"#).unwrap_err();
        assert_eq!(field_of(err), "inner.x");
    }

    #[test]
    fn missing_fields_are_named() {
        let err = parse_json::<Sample>(br#"{"inner": null}"#).unwrap_err();
        assert_eq!(field_of(err), "count");
    }

    #[test]
    fn syntax_errors_are_malformed_bodies() {
        assert!(matches!(
            parse_json::<Sample>(b"{not json").unwrap_err(),
            ApiError::MalformedBody(_)
        ));
    }
}
