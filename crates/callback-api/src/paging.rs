//! Cursor pagination shared by the listings: a limit checked once, and the
//! page read with one item more than asked, so the next cursor is known
//! without a count.

use callback_core::ValidationErrors;

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

/// The page size asked for, or the default; an error names `limit`.
pub fn page_limit(errors: &mut ValidationErrors, asked: Option<u32>) -> u32 {
    let limit = asked.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        errors.push("limit", format!("must be between 1 and {MAX_PAGE}"));
    }
    limit
}

/// The `cursor` given, read with `parse`; an error names `cursor`.
pub fn cursor<T, E>(
    errors: &mut ValidationErrors,
    given: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Option<T> {
    let parsed = parse(given?).ok();
    if parsed.is_none() {
        errors.push("cursor", "is not a cursor from a previous page");
    }
    parsed
}

/// `items` were read with `limit + 1`: keeps `limit` and says where the next
/// page starts, if there is one.
pub fn split_page<T>(
    mut items: Vec<T>,
    limit: u32,
    cursor: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    if items.len() > limit as usize {
        items.truncate(limit as usize);
        let next = items.last().map(cursor);
        (items, next)
    } else {
        (items, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_read_one_long_knows_its_next_cursor() {
        let (page, next) = split_page(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!((page, next.as_deref()), (vec![1, 2], Some("2")));
        let (page, next) = split_page(vec![1, 2], 2, |n| n.to_string());
        assert_eq!((page, next), (vec![1, 2], None));
        let mut errors = ValidationErrors::default();
        assert_eq!(page_limit(&mut errors, None), DEFAULT_PAGE);
        page_limit(&mut errors, Some(0));
        assert_eq!(errors.0[0].field, "limit");
    }
}
