//! The read-only pages — Now, History, Pending, an order's page — and their CSV exports. Each
//! handler first finds the viewer (no session: to the login page), then reads through the ports
//! and keeps only what `access` lets this viewer see.
//!
//! Longer than 600 lines on purpose: four pages and their CSV twins share the filter parsing and
//! the access check; each handler stays short.
use super::access::{Role, Viewer};
use super::auth::lang_switch;
use super::data::{ChainStatus, OrderSnapshot};
use super::session::Session;
use super::view::{self, HistoryFilter, HistoryRow, NowRow, PendingRow};
use super::web::{self, lang_key, lang_of, render, LANG_COOKIE};
use super::Console;
use crate::chat::text::console::{audit_event_label, console_word};
use crate::chat::text::{self, Lang};
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::order::{Order, State as OrderState};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::Response;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Most audit records one History view reads (newest filters first narrow by date). Past it
/// the page says the view is cut; the date range narrows it.
const HISTORY_SCAN: usize = 200_000;

/// A viewer with everything the pages share.
struct Seen {
    viewer: Viewer,
    session: Session,
    lang: Lang,
    /// `?lang=` given: remember it in a cookie.
    set_lang: Option<Lang>,
    orders: Arc<OrderSnapshot>,
    names: HashMap<DingUserId, String>,
}

#[derive(Serialize)]
struct Chrome {
    user_name: String,
    role: &'static str,
    csrf: String,
    nav: &'static str,
    lang_switch: String,
    zone: String,
}

fn chrome(c: &Console, s: &Seen, nav: &'static str, uri: &Uri) -> Chrome {
    let keep: Vec<(String, String)> = uri
        .query()
        .map(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default())
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != "lang")
        .collect();
    let keep: Vec<(&str, &str)> = keep.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Chrome {
        user_name: if s.viewer.name.is_empty() {
            s.viewer.user.to_string()
        } else {
            format!("{} ({})", s.viewer.name, s.viewer.user)
        },
        role: console_word(
            s.lang,
            match s.viewer.role {
                Role::Employee => "role_employee",
                Role::Approver => "role_approver",
                Role::Admin => "role_admin",
            },
        ),
        csrf: s.session.csrf.clone(),
        nav,
        lang_switch: lang_switch(uri.path(), &keep, s.lang),
        zone: c.tz.iana_name().unwrap_or("UTC").to_owned(),
    }
}

/// The viewer of a request, or the answer to give instead (login redirect, store failure).
/// The answer is a whole response on purpose: every page returns it as it is.
#[allow(clippy::result_large_err)]
fn seen(
    c: &Console,
    headers: &HeaderMap,
    uri: &Uri,
    query_lang: Option<&str>,
) -> Result<Seen, Response> {
    let lang = lang_of(headers, query_lang);
    let Some((_, session)) = web::session_of(c, headers) else {
        let next = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| uri.path().to_owned());
        return Err(web::to_login(&next));
    };
    let orders = c.book.read(c.ports.orders.as_ref()).map_err(|e| {
        tracing::error!(error = %e, "console could not read orders");
        web::bad_request(c, lang, "bad_request")
    })?;
    let is_approver =
        c.approvers.contains(&session.user) || orders.approvers.contains(&session.user);
    let viewer = Viewer::new(
        session.user.clone(),
        session.name.clone(),
        &c.overseers,
        is_approver,
    );
    let mut names = orders.names.clone();
    if !session.name.is_empty() {
        names.insert(session.user.clone(), session.name.clone());
    }
    Ok(Seen {
        viewer,
        session,
        lang,
        set_lang: query_lang.map(|_| lang),
        orders,
        names,
    })
}

/// Runs a page off the async runtime: a page reads and filters in memory (a first load of every
/// order, a filtered History over the whole trail: a few hundred ms at 10,000 orders), and on a
/// runtime thread that would hold up the DingTalk deliveries sharing it.
async fn off_runtime(page: impl FnOnce() -> Response + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(page).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "a console page failed");
            axum::response::IntoResponse::into_response(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            )
        }
    }
}

/// Adds the language cookie when `?lang=` chose one.
fn finish(c: &Console, s: &Seen, mut r: Response) -> Response {
    if let Some(l) = s.set_lang {
        let (name, value) =
            web::set_cookie(LANG_COOKIE, lang_key(l), "/console", 365 * 86400, c.secure);
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.headers_mut().append(name, v);
        }
    }
    r
}

// ------------------------------------------------------------------ now ----------

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NowQuery {
    host: String,
    user: String,
    lang: Option<String>,
}

#[derive(Serialize)]
struct NowPage {
    #[serde(flatten)]
    chrome: Chrome,
    as_of: Option<String>,
    admin: bool,
    host: String,
    user: String,
    rows: Vec<NowRow>,
    active: Vec<NowRow>,
    csv: String,
}

/// The viewer's JumpServer username: the one their newest order maps to.
fn own_username(s: &Seen) -> Option<String> {
    s.orders
        .values()
        .filter(|o| o.requester == s.viewer.user && !o.jms_username.is_empty())
        .max_by_key(|o| o.created_at)
        .map(|o| o.jms_username.clone())
}

fn now_rows(c: &Console, s: &Seen, q: &NowQuery) -> (Option<String>, Vec<NowRow>, Vec<NowRow>) {
    let now = c.clock.now();
    let ours = &*s.orders;
    let as_of = match c.ports.index.stats() {
        Ok(Some(st)) => Some(view::local(st.synced_at, &c.tz)),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "console could not read the index");
            None
        }
    };
    let admin = s.viewer.sees_everything();
    let own = own_username(s);
    let mut rows = Vec::new();
    let host = q.host.trim();
    if !host.is_empty() {
        let mut addresses: Vec<String> = c
            .ports
            .index
            .hosts_matching(host)
            .unwrap_or_default()
            .into_iter()
            .map(|h| h.address)
            .collect();
        if addresses.is_empty() {
            addresses.push(host.to_owned());
        }
        addresses.sort();
        addresses.dedup();
        for a in addresses {
            for r in c.ports.index.who_can_reach(&a, now).unwrap_or_default() {
                // Employees and approvers see their own reach only.
                if admin || own.as_deref() == Some(r.user.username.as_str()) {
                    rows.push(view::reach_row(s.lang, &c.tz, &s.names, ours, &r));
                }
            }
        }
    }
    let user = if admin {
        q.user.trim().to_owned()
    } else {
        String::new()
    };
    let user = if user.is_empty() && !admin && host.is_empty() {
        own.clone().unwrap_or_default()
    } else {
        user
    };
    if !user.is_empty() {
        if let Ok(Some(ua)) = c.ports.index.user_access(&user, now) {
            for g in &ua.grants {
                rows.extend(view::grant_rows(
                    s.lang,
                    &c.tz,
                    &s.names,
                    ours,
                    &ua.user.display(),
                    g,
                ));
            }
        }
    }
    // What the bot granted and is in force, from the orders themselves.
    let mut active: Vec<&Order> = s
        .orders
        .values()
        .filter(|o| o.state == OrderState::Active && s.viewer.can_see(o))
        .collect();
    active.sort_by_key(|o| std::cmp::Reverse(o.created_at));
    let active = active
        .into_iter()
        .map(|o| NowRow {
            user: format!(
                "{} ({})",
                view::person(&s.names, &o.requester),
                o.jms_username
            ),
            host: o
                .request
                .targets()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            accounts: o
                .grant
                .as_ref()
                .and_then(|g| g.account.clone())
                .unwrap_or_default(),
            until: o
                .window
                .map(|w| view::local(w.end, &c.tz))
                .unwrap_or_default(),
            permission: o.granted_permission_name(),
            order: o.id.to_string(),
            requested_by: view::person(&s.names, &o.requester),
            approved_by: o
                .decided_by
                .as_ref()
                .map(|d| view::person(&s.names, d))
                .unwrap_or_default(),
            reason: o.request.reason().to_owned(),
        })
        .collect();
    (as_of, rows, active)
}

pub async fn now(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<NowQuery>,
) -> Response {
    off_runtime(move || now_page(c, headers, uri, q)).await
}

fn now_page(c: Arc<Console>, headers: HeaderMap, uri: Uri, q: NowQuery) -> Response {
    let s = match seen(&c, &headers, &uri, q.lang.as_deref()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (as_of, rows, active) = now_rows(&c, &s, &q);
    let admin = s.viewer.sees_everything();
    let user = if admin { q.user.as_str() } else { "" };
    let csv = serde_urlencoded::to_string([("host", q.host.as_str()), ("user", user)])
        .unwrap_or_default();
    let page = NowPage {
        chrome: chrome(&c, &s, "now", &uri),
        as_of,
        admin: s.viewer.sees_everything(),
        host: q.host.clone(),
        user: q.user.clone(),
        rows,
        active,
        csv,
    };
    finish(&c, &s, render(&c, "now.html", s.lang, page))
}

fn now_csv_lines(rows: Vec<NowRow>) -> impl Iterator<Item = Vec<String>> {
    rows.into_iter().map(|r| {
        vec![
            r.user,
            r.host,
            r.accounts,
            r.until,
            r.permission,
            r.order,
            r.requested_by,
            r.approved_by,
            r.reason,
        ]
    })
}

pub async fn now_csv(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<NowQuery>,
) -> Response {
    off_runtime(move || now_csv_page(c, headers, uri, q)).await
}

fn now_csv_page(c: Arc<Console>, headers: HeaderMap, uri: Uri, q: NowQuery) -> Response {
    let s = match seen(&c, &headers, &uri, q.lang.as_deref()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (_, mut rows, active) = now_rows(&c, &s, &q);
    if q.host.trim().is_empty() && q.user.trim().is_empty() && s.viewer.sees_everything() {
        rows = active;
    }
    let w = |k| console_word(s.lang, k);
    let header = [
        w("user"),
        w("host"),
        w("accounts"),
        w("until"),
        w("permission"),
        w("order"),
        w("requested_by"),
        w("approved_by"),
        w("reason"),
    ];
    web::csv_response("now.csv", view::csv_bytes(&header, now_csv_lines(rows)))
}

// ------------------------------------------------------------------ history ----------

#[derive(Serialize)]
struct Option_ {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Serialize)]
struct HistoryPage {
    #[serde(flatten)]
    chrome: Chrome,
    f: HistoryFilter,
    rows: Vec<HistoryRow>,
    total: usize,
    page: usize,
    pages: usize,
    prev: Option<String>,
    next: Option<String>,
    csv: String,
    sort_links: HashMap<&'static str, String>,
    states: Vec<Option_>,
    events: Vec<Option_>,
    chain: &'static str,
    chain_class: &'static str,
    cut: bool,
    bad_date: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct HistoryQuery {
    #[serde(flatten)]
    f: HistoryFilter,
    lang: Option<String>,
}

/// The rows of a History view (all pages), and whether the scan was cut.
fn history_rows(
    c: &Console,
    s: &Seen,
    f: &HistoryFilter,
) -> Result<(Vec<HistoryRow>, bool), view::BadFilter> {
    let (from, to) = f.range(&c.tz)?;
    let since = from.unwrap_or(Timestamp::MIN);
    let records = if s.viewer.sees_everything() {
        if f.names_order_or_person() {
            narrowed_records(c, s, f, since)
        } else {
            c.ports.audit.since(since, HISTORY_SCAN)
        }
    } else {
        // The records of the orders this viewer can see and those about them (their own records
        // of no order among them), read through the trail's indexes, not a walk of the whole
        // trail; `can_see_record` below still decides each.
        let orders: Vec<OrderId> = s
            .orders
            .values()
            .filter(|o| s.viewer.can_see(o))
            .map(|o| o.id.clone())
            .collect();
        c.ports
            .audit
            .records_of(&orders, &[s.viewer.user.to_string()], since, HISTORY_SCAN)
    }
    .unwrap_or_else(|e| {
        tracing::error!(error = %e, "console could not read the audit trail");
        Vec::new()
    });
    let cut = records.len() >= HISTORY_SCAN;
    let mut rows: Vec<HistoryRow> = records
        .iter()
        .filter(|r| to.is_none_or(|t| r.at < t))
        .filter_map(|r| {
            let o = r.order_id.as_ref().and_then(|id| s.orders.get(id));
            (s.viewer.can_see_record(r, o) && f.matches(r, o, &s.names))
                .then(|| view::history_row(s.lang, &c.tz, &s.names, r, o))
        })
        .collect();
    view::sort_rows(&mut rows, f);
    Ok((rows, cut))
}

/// The records a filter naming a person, host, system or state can match, read through the
/// trail's indexes instead of the whole trail: those of the orders it matches (kept in memory),
/// and with a person, those about the people whose id or name contains it. A superset: the
/// filter itself still decides each record.
fn narrowed_records(
    c: &Console,
    s: &Seen,
    f: &HistoryFilter,
    since: Timestamp,
) -> Result<Vec<crate::domain::audit::AuditRecord>, crate::store::StoreError> {
    let orders: Vec<OrderId> = s
        .orders
        .values()
        .filter(|o| f.order_matches(Some(o)) && (f.person.is_empty() || f.person_requested(o)))
        .map(|o| o.id.clone())
        .collect();
    let users: Vec<String> = if f.person.is_empty() {
        Vec::new()
    } else {
        // The index keeps ids lowercase; names are known by the ids as written.
        let names: HashMap<String, &str> = s
            .names
            .iter()
            .map(|(id, n)| (id.as_str().to_lowercase(), n.as_str()))
            .collect();
        c.ports
            .audit
            .users()?
            .into_iter()
            .filter(|u| f.person_is(u, names.get(u).copied().unwrap_or("")))
            .collect()
    };
    c.ports
        .audit
        .records_of(&orders, &users, since, HISTORY_SCAN)
}

/// The History a viewer who sees everything opens on (no filter, by time): the page's records
/// read from the trail's end, the total counted, instead of every record read and sorted. The
/// trail's order is its time order (each record is written when it happens). Rows, total and
/// the page actually shown.
fn whole_trail_page(
    c: &Console,
    s: &Seen,
    f: &HistoryFilter,
    size: usize,
) -> (Vec<HistoryRow>, usize, usize) {
    let read = |page: usize| {
        c.ports
            .audit
            .page(f.descending(), (page - 1) * size, size)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "console could not read the audit trail");
                (Vec::new(), 0)
            })
    };
    let mut page = f.page().max(1);
    let (mut records, total) = read(page);
    let last = total.div_ceil(size).max(1);
    if page > last {
        // Past the end, like the filtered view: the last page.
        page = last;
        records = read(page).0;
    }
    let rows = records
        .iter()
        .map(|r| {
            let o = r.order_id.as_ref().and_then(|id| s.orders.get(id));
            view::history_row(s.lang, &c.tz, &s.names, r, o)
        })
        .collect();
    (rows, total, page)
}

fn chain_words(c: &Console) -> (&'static str, &'static str) {
    match c.ports.audit.chain() {
        ChainStatus::Missing => ("chain_missing", "warn"),
        ChainStatus::Verified { .. } => ("chain_ok", "ok"),
        ChainStatus::Broken { .. } => ("chain_broken", "bad"),
    }
}

pub async fn history(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HistoryQuery>,
) -> Response {
    off_runtime(move || history_page(c, headers, uri, q)).await
}

fn history_page(c: Arc<Console>, headers: HeaderMap, uri: Uri, q: HistoryQuery) -> Response {
    let s = match seen(&c, &headers, &uri, q.lang.as_deref()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let f = q.f;
    let size = c.cfg.page_size.max(1);
    let (shown, total, page, cut, bad_date) =
        if s.viewer.sees_everything() && f.is_whole_trail_by_time() {
            let (shown, total, page) = whole_trail_page(&c, &s, &f, size);
            (shown, total, page, false, false)
        } else {
            let (rows, cut, bad_date) = match history_rows(&c, &s, &f) {
                Ok((rows, cut)) => (rows, cut, false),
                Err(_) => (Vec::new(), false, true),
            };
            let total = rows.len();
            let page = f.page().clamp(1, total.div_ceil(size).max(1));
            let shown: Vec<HistoryRow> = rows
                .into_iter()
                .skip((page - 1) * size)
                .take(size)
                .collect();
            (shown, total, page, cut, bad_date)
        };
    let pages = total.div_ceil(size).max(1);
    let link = |p: usize| format!("/console/history?{}", f.query_with(Some(p), None));
    let mut sort_links = HashMap::new();
    for key in ["time", "order", "person", "event"] {
        let current = if f.sort.is_empty() {
            "time"
        } else {
            f.sort.as_str()
        };
        let dir = if current == key && f.descending() {
            "asc"
        } else {
            "desc"
        };
        sort_links.insert(
            key,
            format!("/console/history?{}", f.query_with(None, Some((key, dir)))),
        );
    }
    let states = OrderState::ALL
        .iter()
        .filter(|st| **st != OrderState::Draft)
        .map(|st| Option_ {
            value: st.as_str().to_owned(),
            label: text::status_label(s.lang, view::status_of(*st)).to_owned(),
            selected: f.state == st.as_str(),
        })
        .collect();
    let events = view::EVENTS
        .iter()
        .map(|e| Option_ {
            value: view::event_key(*e),
            label: audit_event_label(s.lang, *e).to_owned(),
            selected: f.event == view::event_key(*e),
        })
        .collect();
    let (chain, chain_class) = chain_words(&c);
    let page_body = HistoryPage {
        chrome: chrome(&c, &s, "history", &uri),
        csv: format!("/console/history.csv?{}", f.query_with(None, None)),
        prev: (page > 1).then(|| link(page - 1)),
        next: (page < pages).then(|| link(page + 1)),
        f,
        rows: shown,
        total,
        page,
        pages,
        sort_links,
        states,
        events,
        chain,
        chain_class,
        cut,
        bad_date,
    };
    let mut r = render(&c, "history.html", s.lang, page_body);
    if bad_date {
        *r.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    }
    finish(&c, &s, r)
}

pub async fn history_csv(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HistoryQuery>,
) -> Response {
    off_runtime(move || history_csv_page(c, headers, uri, q)).await
}

fn history_csv_page(c: Arc<Console>, headers: HeaderMap, uri: Uri, q: HistoryQuery) -> Response {
    let s = match seen(&c, &headers, &uri, q.lang.as_deref()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok((rows, _)) = history_rows(&c, &s, &q.f) else {
        return web::bad_request(&c, s.lang, "bad_request");
    };
    let w = |k| console_word(s.lang, k);
    let header = [
        w("time"),
        w("order"),
        w("requester"),
        w("targets"),
        w("system"),
        w("event"),
        w("state"),
        w("actor"),
        w("detail"),
    ];
    let lines = rows.into_iter().map(|r| {
        vec![
            r.at,
            r.order,
            r.requester,
            r.targets,
            r.systems,
            r.event,
            r.change,
            r.actor,
            r.detail,
        ]
    });
    web::csv_response("history.csv", view::csv_bytes(&header, lines))
}

// ------------------------------------------------------------------ pending ----------

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LangQuery {
    lang: Option<String>,
}

#[derive(Serialize)]
struct PendingPage {
    #[serde(flatten)]
    chrome: Chrome,
    rows: Vec<PendingRow>,
}

fn pending_rows(c: &Console, s: &Seen) -> Vec<PendingRow> {
    let now = c.clock.now();
    let mut pending: Vec<&Order> = s
        .orders
        .values()
        .filter(|o| o.state == OrderState::PendingApproval && s.viewer.can_see(o))
        .collect();
    pending.sort_by_key(|o| o.created_at);
    pending
        .into_iter()
        .map(|o| view::pending_row(s.lang, &c.tz, &s.names, o, now, s.viewer.waits_for(o)))
        .collect()
}

pub async fn pending(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<LangQuery>,
) -> Response {
    off_runtime(move || pending_page(c, headers, uri, q)).await
}

fn pending_page(c: Arc<Console>, headers: HeaderMap, uri: Uri, q: LangQuery) -> Response {
    let s = match seen(&c, &headers, &uri, q.lang.as_deref()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let page = PendingPage {
        chrome: chrome(&c, &s, "pending", &uri),
        rows: pending_rows(&c, &s),
    };
    finish(&c, &s, render(&c, "pending.html", s.lang, page))
}

pub async fn pending_csv(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<LangQuery>,
) -> Response {
    off_runtime(move || pending_csv_page(c, headers, uri, q)).await
}

fn pending_csv_page(c: Arc<Console>, headers: HeaderMap, uri: Uri, q: LangQuery) -> Response {
    let s = match seen(&c, &headers, &uri, q.lang.as_deref()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let w = |k| console_word(s.lang, k);
    let header = [
        w("order"),
        w("requester"),
        w("targets"),
        w("role"),
        w("duration"),
        w("reason"),
        w("approvers"),
        w("created"),
        w("age"),
    ];
    let lines = pending_rows(&c, &s).into_iter().map(|r| {
        vec![
            r.order,
            r.requester,
            r.targets,
            r.role,
            r.duration,
            r.reason,
            r.approvers,
            r.created,
            r.age,
        ]
    });
    web::csv_response("pending.csv", view::csv_bytes(&header, lines))
}

// ------------------------------------------------------------------ order ----------

#[derive(Serialize)]
struct Field {
    label: &'static str,
    value: String,
}

#[derive(Serialize)]
struct OrderPage {
    #[serde(flatten)]
    chrome: Chrome,
    id: String,
    status: String,
    fields: Vec<Field>,
    timeline: Vec<HistoryRow>,
}

pub async fn order(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    off_runtime(move || order_page(c, headers, uri, id, q)).await
}

fn order_page(c: Arc<Console>, headers: HeaderMap, uri: Uri, id: String, q: LangQuery) -> Response {
    let s = match seen(&c, &headers, &uri, q.lang.as_deref()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = OrderId::new(id);
    // Absent and not-yours get the same answer.
    let Some(o) = s.orders.get(&id).filter(|o| s.viewer.can_see(o)) else {
        return finish(&c, &s, web::not_found(&c, s.lang));
    };
    let w = |k| console_word(s.lang, k);
    let t = |ts: Timestamp| view::local(ts, &c.tz);
    let mut fields = vec![
        Field {
            label: w("requester"),
            value: format!(
                "{} → {}",
                view::person(&s.names, &o.requester),
                o.jms_username
            ),
        },
        Field {
            label: w("targets"),
            value: o
                .request
                .targets()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        },
        Field {
            label: w("role"),
            value: o
                .request
                .role()
                .map(|r| text::role(s.lang, r).to_owned())
                .unwrap_or_default(),
        },
        Field {
            label: w("duration"),
            value: o
                .request
                .access_duration()
                .map(|d| text::duration(s.lang, d))
                .unwrap_or_default(),
        },
        Field {
            label: w("reason"),
            value: o.request.reason().to_owned(),
        },
        Field {
            label: w("created"),
            value: t(o.created_at),
        },
        Field {
            label: w("approvers"),
            value: o
                .approvers
                .iter()
                .map(|a| view::person(&s.names, a))
                .collect::<Vec<_>>()
                .join(", "),
        },
    ];
    if let Some(d) = &o.decided_by {
        fields.push(Field {
            label: w("decided_by"),
            value: format!(
                "{}{}",
                view::person(&s.names, d),
                o.decided_at
                    .map(|at| format!(" · {}", t(at)))
                    .unwrap_or_default()
            ),
        });
    }
    if let Some(r) = &o.decision_reason {
        fields.push(Field {
            label: w("decision_reason"),
            value: r.clone(),
        });
    }
    if let Some(win) = &o.window {
        fields.push(Field {
            label: w("window"),
            value: format!("{} – {}", t(win.start), t(win.end)),
        });
    }
    if let Some(p) = o.grant.as_ref().and_then(|g| g.permission_name.clone()) {
        fields.push(Field {
            label: w("permission"),
            value: p,
        });
    }
    let timeline = c
        .ports
        .audit
        .for_order(&o.id)
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "console could not read an order's trail");
            Vec::new()
        })
        .iter()
        .map(|r| view::history_row(s.lang, &c.tz, &s.names, r, Some(o)))
        .collect();
    let page = OrderPage {
        chrome: chrome(&c, &s, "order", &uri),
        id: o.id.to_string(),
        status: text::status_label(s.lang, o.status()).to_owned(),
        fields,
        timeline,
    };
    finish(&c, &s, render(&c, "order.html", s.lang, page))
}
