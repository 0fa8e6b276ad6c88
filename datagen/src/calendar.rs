//! Business days (Monday to Friday) and their months.

use chrono::{Datelike, NaiveDate, Weekday};

/// Days since 1970-01-01, the Arrow `Date32` representation.
pub fn to_date32(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

/// Whether `d` is a business day.
pub fn is_business_day(d: NaiveDate) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Every business day in `[start, end]`.
pub fn business_days(start: NaiveDate, end: NaiveDate) -> Vec<NaiveDate> {
    start
        .iter_days()
        .take_while(|d| *d <= end)
        .filter(|d| is_business_day(*d))
        .collect()
}

/// `YYYY-MM` of a date.
pub fn month_key(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

/// Whether `d` is the first business day of a calendar quarter within the panel
/// (`prev` is the previous business day of the panel).
pub fn starts_quarter(prev: Option<NaiveDate>, d: NaiveDate) -> bool {
    match prev {
        None => false,
        Some(p) => p.month() != d.month() && matches!(d.month(), 1 | 4 | 7 | 10),
    }
}
