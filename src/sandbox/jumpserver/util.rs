//! Small pure helpers of the simulated JumpServer: its datetime text forms, DRF limit/offset
//! pagination (absolute links, 200-row silent cap, 1000-row limit cap), ids and RFC 6238 TOTP.
use jiff::{tz::TimeZone, SignedDuration, Timestamp};
use serde_json::{json, Value};

/// The recorded server ran in Asia/Shanghai; every datetime it returns carries +0800.
pub fn fmt_dt(t: Timestamp) -> String {
    let tz = TimeZone::fixed(jiff::tz::offset(8));
    t.to_zoned(tz).strftime("%Y/%m/%d %H:%M:%S %z").to_string()
}

/// Same, but `null` for an absent value.
pub fn fmt_opt(t: Option<Timestamp>) -> Value {
    t.map(|t| Value::String(fmt_dt(t))).unwrap_or(Value::Null)
}

/// Accepts the three input forms DRF lists in its error message; naive values are local (+08:00).
pub fn parse_dt(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    for f in ["%Y/%m/%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S %z"] {
        if let Ok(z) = jiff::fmt::strtime::parse(f, s).and_then(|p| p.to_timestamp()) {
            return Some(z);
        }
    }
    let naive = s.parse::<jiff::civil::DateTime>().ok()?;
    naive
        .to_zoned(TimeZone::fixed(jiff::tz::offset(8)))
        .ok()
        .map(|z| z.timestamp())
}

pub const DT_FORMAT_ERROR: &str = "Datetime has wrong format. Use one of these formats instead: YYYY/MM/DD hh:mm:ss [+HHMM|-HHMM], YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z], YYYY-MM-DD hh:mm:ss [+HHMM|-HHMM].";

/// JumpServer's "never expires" default: 70 years after creation.
pub fn far_future(now: Timestamp) -> Timestamp {
    now.checked_add(SignedDuration::from_hours(70 * 365 * 24 - 18 * 24))
        .unwrap_or(now)
}

/// Random v4 UUID text.
pub fn new_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Random token of letters and digits (the shape of the server's Bearer tokens).
pub fn new_token(len: usize) -> String {
    use rand::Rng;
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHA[rng.random_range(0..ALPHA.len())] as char)
        .collect()
}

/// Parsed query string, in request order (values form-decoded).
pub type Query = Vec<(String, String)>;

pub fn parse_query(q: &str) -> Query {
    url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn qget<'a>(q: &'a Query, key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Rows a list endpoint returns without `limit` (DRF setting in v4.10.16; nothing says it cut).
pub const NO_LIMIT_CAP: usize = 200;
/// `max_limit` of the limit/offset paginator.
pub const MAX_LIMIT: usize = 1000;

/// DRF `LimitOffsetPagination` as configured on v4.10.16. `base` is `http://host/path`.
pub fn paginate(items: Vec<Value>, q: &Query, base: &str, cap_without_limit: bool) -> Value {
    paginate_with(items, q, base, cap_without_limit, |v| v)
}

/// Rows a page holds under `paginate` (everything up to the silent cap without `limit`).
pub fn page_limit(q: &Query) -> usize {
    qget(q, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .map_or(NO_LIMIT_CAP, |l| l.min(MAX_LIMIT))
}

/// The `offset` `paginate` starts at.
pub fn page_offset(q: &Query) -> usize {
    if qget(q, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .is_none()
    {
        return 0;
    }
    qget(q, "offset")
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0)
}

/// `paginate` that renders only the rows of the page asked for: at the scale of a large org
/// (50k hosts) rendering every row for each page of 1000 made the simulator the bottleneck.
pub fn paginate_with<T>(
    items: Vec<T>,
    q: &Query,
    base: &str,
    cap_without_limit: bool,
    render: impl FnMut(T) -> Value,
) -> Value {
    let limit = qget(q, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let Some(limit) = limit else {
        let rows: Vec<Value> = if cap_without_limit {
            items.into_iter().take(NO_LIMIT_CAP).map(render).collect()
        } else {
            items.into_iter().map(render).collect()
        };
        return Value::Array(rows);
    };
    let limit = limit.min(MAX_LIMIT);
    let offset = qget(q, "offset")
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    let count = items.len();
    let results: Vec<Value> = items
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(render)
        .collect();
    let link = |off: Option<usize>| -> String {
        // Django's replace_query_param re-encodes the whole query sorted by key.
        let mut pairs: Vec<(String, String)> = q
            .iter()
            .filter(|(k, _)| k != "limit" && k != "offset")
            .cloned()
            .collect();
        pairs.push(("limit".into(), limit.to_string()));
        if let Some(o) = off {
            pairs.push(("offset".into(), o.to_string()));
        }
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let qs = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        format!("{base}?{qs}")
    };
    let next = if offset + limit < count {
        Value::String(link(Some(offset + limit)))
    } else {
        Value::Null
    };
    let previous = if offset == 0 {
        Value::Null
    } else if offset <= limit {
        Value::String(link(None))
    } else {
        Value::String(link(Some(offset - limit)))
    };
    json!({"count": count, "next": next, "previous": previous, "results": results})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_in_every_accepted_form() {
        let want: Timestamp = "2026-11-29T10:00:00Z".parse().unwrap();
        for s in [
            "2026-11-29T18:00:00+08:00",
            "2026-11-29T10:00:00Z",
            "2026/11/29 18:00:00 +0800",
            "2026-11-29 18:00:00 +0800",
            "2026-11-29T18:00:00",
        ] {
            assert_eq!(parse_dt(s), Some(want), "{s}");
        }
        assert_eq!(parse_dt("2026-13-45 25:00"), None);
        assert_eq!(fmt_dt(want), "2026/11/29 18:00:00 +0800");
    }

    #[test]
    fn pagination_links_like_drf() {
        let items: Vec<Value> = (0..235).map(|i| json!(i)).collect();
        let q = parse_query("limit=100&offset=100");
        let v = paginate(items.clone(), &q, "http://h/x/", true);
        assert_eq!(v["next"], "http://h/x/?limit=100&offset=200");
        assert_eq!(v["previous"], "http://h/x/?limit=100");
        let v = paginate(
            items.clone(),
            &parse_query("limit=100&offset=1000"),
            "http://h/x/",
            true,
        );
        assert_eq!(v["previous"], "http://h/x/?limit=100&offset=900");
        assert_eq!(v["results"], json!([]));
        let v = paginate(items.clone(), &parse_query(""), "http://h/x/", true);
        assert_eq!(v.as_array().map(Vec::len), Some(200));
        let v = paginate(items, &parse_query("limit=5000"), "http://h/x/", true);
        assert_eq!(v["results"].as_array().map(Vec::len), Some(235));
    }
}
