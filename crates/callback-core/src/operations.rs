//! What operators do to many tasks at once: filters for bulk re-send and
//! cancel, failed-task buckets of ten minutes, retention.

use crate::TaskStatus;
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeDelta, Utc};

/// Which tasks a bulk operation acts on; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkFilter {
    pub status: Option<TaskStatus>,
    pub source_app: Option<String>,
    pub target_app: Option<String>,
    /// The host of the task's URL, e.g. `pay.example.com`.
    pub url_host: Option<String>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    /// When it failed for good (only failed tasks have this).
    pub failed_from: Option<DateTime<Utc>>,
    pub failed_to: Option<DateTime<Utc>>,
}

/// How far behind delivery is, as the store sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Unfinished tasks whose next attempt is due now or earlier.
    pub due: u64,
    /// When the longest-waiting of them became due.
    pub oldest_due_at: Option<DateTime<Utc>>,
    /// Tasks waiting for a later retry.
    pub retrying_later: u64,
}

/// Ten minutes of failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedBucket {
    pub start: DateTime<Utc>,
    /// Tasks still failed whose failure falls in the bucket.
    pub size: u64,
    /// Times an operator re-sent the bucket.
    pub retries: u32,
}

pub const BUCKET: TimeDelta = TimeDelta::minutes(10);

/// Buckets are aligned to ten minutes of local time in `offset`; keys are
/// `YYYYMMDDHHmm` of their start in that offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketClock {
    pub offset: FixedOffset,
}

impl BucketClock {
    pub fn utc() -> Self {
        Self {
            offset: FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("0 is a valid offset")),
        }
    }

    /// Parses `+08:00`, `-05:30` or `Z`.
    pub fn parse_offset(raw: &str) -> Result<Self, String> {
        if raw == "Z" || raw == "UTC" {
            return Ok(Self::utc());
        }
        raw.parse::<FixedOffset>()
            .map(|offset| Self { offset })
            .map_err(|_| format!("must be an offset like +08:00, not {raw:?}"))
    }

    pub fn offset_ms(self) -> i64 {
        i64::from(self.offset.local_minus_utc()) * 1000
    }

    /// The start of the bucket holding `at`.
    pub fn bucket_start(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let local_ms = at.timestamp_millis() + self.offset_ms();
        let start = local_ms - local_ms.rem_euclid(BUCKET.num_milliseconds()) - self.offset_ms();
        DateTime::from_timestamp_millis(start).unwrap_or(at)
    }

    pub fn key(self, start: DateTime<Utc>) -> String {
        start
            .with_timezone(&self.offset)
            .format("%Y%m%d%H%M")
            .to_string()
    }

    /// The bucket a key names; the key must be a bucket's start.
    pub fn parse_key(self, key: &str) -> Result<DateTime<Utc>, String> {
        let naive = NaiveDateTime::parse_from_str(key, "%Y%m%d%H%M")
            .map_err(|_| format!("must be YYYYMMDDHHmm, not {key:?}"))?;
        let start = naive
            .and_local_timezone(self.offset)
            .single()
            .ok_or("is not a valid local time")?
            .with_timezone(&Utc);
        if self.bucket_start(start) != start {
            return Err("must be the start of a ten-minute bucket (minutes 00, 10, ... 50)".into());
        }
        Ok(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn buckets_are_ten_minutes_keyed_by_their_start() {
        let utc = BucketClock::utc();
        let start = utc.bucket_start(at("2021-09-09T14:47:59Z"));
        assert_eq!(start, at("2021-09-09T14:40:00Z"));
        assert_eq!(utc.key(start), "202109091440");
        assert_eq!(utc.parse_key("202109091440"), Ok(start));
        assert!(utc.parse_key("202109091445").is_err());
        assert!(utc.parse_key("2021-09-09").is_err());
    }

    #[test]
    fn keys_follow_the_configured_offset() {
        let beijing = BucketClock::parse_offset("+08:00").unwrap();
        let start = beijing.bucket_start(at("2021-09-09T06:41:00Z"));
        assert_eq!(beijing.key(start), "202109091440");
        assert_eq!(
            beijing.parse_key("202109091440"),
            Ok(at("2021-09-09T06:40:00Z"))
        );
        let nepal = BucketClock::parse_offset("+05:45").unwrap();
        let start = nepal.bucket_start(at("2021-09-09T08:56:00Z"));
        assert_eq!(nepal.key(start), "202109091440");
        assert!(BucketClock::parse_offset("Beijing").is_err());
    }
}
