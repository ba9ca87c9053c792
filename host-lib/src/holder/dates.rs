//! Calendar dates in applicant files (`YYYY-MM-DD` or `YYYYMMDD`) and their range checks.

use time::{Date, Month};

/// The earliest birth date accepted for an applicant.
pub const EARLIEST_BIRTH_DATE: Date = time::macros::date!(1900 - 01 - 01);

/// Why a date was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not `YYYY-MM-DD` / `YYYYMMDD`.
    #[error("{0:?} is not a date: write YYYY-MM-DD (or YYYYMMDD)")]
    Format(String),
    /// Well formed but no such day (e.g. 2023-02-29).
    #[error("{0:?} is not a day of the calendar")]
    NoSuchDay(String),
    /// A birth date after today.
    #[error("{date} is in the future (today is {today})")]
    InFuture {
        /// The date given.
        date: Date,
        /// The validator's today.
        today: Date,
    },
    /// A birth date before [`EARLIEST_BIRTH_DATE`].
    #[error("{date} is before {earliest}, the earliest birth date accepted")]
    TooEarly {
        /// The date given.
        date: Date,
        /// The limit.
        earliest: Date,
    },
}

/// Parses `YYYY-MM-DD` or `YYYYMMDD` (ASCII digits only).
pub fn parse_date(s: &str) -> Result<Date, DateError> {
    let t = s.trim();
    let digits: String = match t.len() {
        8 => t.to_owned(),
        10 if t.as_bytes()[4] == b'-' && t.as_bytes()[7] == b'-' => {
            format!("{}{}{}", &t[..4], &t[5..7], &t[8..])
        }
        _ => return Err(DateError::Format(t.to_owned())),
    };
    ymd_digits(&digits).ok_or_else(|| DateError::Format(t.to_owned()))?;
    date_from_digits(&digits).ok_or_else(|| DateError::NoSuchDay(t.to_owned()))
}

fn ymd_digits(d: &str) -> Option<()> {
    (d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit())).then_some(())
}

/// The date for eight ASCII digits `YYYYMMDD`, if it exists.
pub fn date_from_digits(d: &str) -> Option<Date> {
    ymd_digits(d)?;
    let year: i32 = d[..4].parse().ok()?;
    let month: u8 = d[4..6].parse().ok()?;
    let day: u8 = d[6..].parse().ok()?;
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

/// `YYYYMMDD` for a date with a four-digit year.
pub fn date_digits(d: Date) -> String {
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Checks a birth date against today and [`EARLIEST_BIRTH_DATE`].
pub fn check_birth_date(date: Date, today: Date) -> Result<(), DateError> {
    if date > today {
        Err(DateError::InFuture { date, today })
    } else if date < EARLIEST_BIRTH_DATE {
        Err(DateError::TooEarly {
            date,
            earliest: EARLIEST_BIRTH_DATE,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn parse() {
        assert_eq!(parse_date("1990-03-07"), Ok(date!(1990 - 03 - 07)));
        assert_eq!(parse_date("19900307"), Ok(date!(1990 - 03 - 07)));
        assert_eq!(parse_date(" 2000-02-29 "), Ok(date!(2000 - 02 - 29)));
        assert!(matches!(
            parse_date("1900-02-29"),
            Err(DateError::NoSuchDay(_))
        ));
        assert!(matches!(
            parse_date("1990-13-01"),
            Err(DateError::NoSuchDay(_))
        ));
        assert!(matches!(
            parse_date("1990/03/07"),
            Err(DateError::Format(_))
        ));
        assert!(matches!(parse_date("1990-3-7"), Err(DateError::Format(_))));
        assert!(matches!(parse_date("+9900307"), Err(DateError::Format(_))));
        assert!(matches!(
            parse_date("１９９０-03-07"),
            Err(DateError::Format(_))
        ));
        assert_eq!(date_digits(date!(1990 - 03 - 07)), "19900307");
    }

    #[test]
    fn birth_range() {
        let today = date!(2026 - 01 - 10);
        assert!(check_birth_date(today, today).is_ok());
        assert!(check_birth_date(date!(2026 - 01 - 11), today).is_err());
        assert!(check_birth_date(date!(1899 - 12 - 31), today).is_err());
    }
}
