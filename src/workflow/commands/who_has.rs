//! `/who-has <host|user> [all]` (admins): who can connect to a host now, or what a user can
//! reach, from the local index; before the first `/sync`, asked of JumpServer live and answered
//! on the session webhook when done. The bot's own active orders for the subject are appended.
use crate::chat::text;
use crate::dispatch::DispatchError;
use crate::domain::command::{display_word, CommandKind};
use crate::domain::inventory::IndexedHost;
use crate::domain::order::State;
use crate::domain::policy::Policy;
use crate::domain::target::{self, Target};
use crate::workflow::commands::{Answer, Ctx};
use crate::workflow::ports::{Bastion, OutMessage, Reacher};
use crate::workflow::{retry, Workflow};
use std::collections::BTreeSet;

/// The command that lists `subject` again (the starting row is appended): `谁有权限 web1 全部`.
fn again(lang: text::Lang, subject: &str, all: bool) -> String {
    let all = match (all, lang) {
        (false, _) => "",
        (true, text::Lang::ZhCn) => " 全部",
        (true, text::Lang::En) => " all",
    };
    format!("{} {subject}{all}", display_word(CommandKind::WhoHas, lang))
}

/// Hosts named per grant in `/who-has <user>` (the index's bounded answer has this many).
const HOSTS_PER_GRANT: usize = crate::domain::inventory::GRANT_HOSTS_SHOWN;

/// `/who-has <subject> [all]`: from the index, or (never synced) from JumpServer live.
pub(super) fn run(
    cx: &Ctx<'_>,
    subject: String,
    all: bool,
    from: usize,
) -> Result<Answer, DispatchError> {
    let wf = cx.wf;
    if let Some(answer) = indexed(wf, &subject, all, from)? {
        return Ok(Answer::Say(answer));
    }
    // Not synced yet: ask JumpServer live (with the bot's own orders).
    let is_address = target::classify(subject.trim()).is_ok_and(|t| t.is_address());
    let orders = bot_orders_text(wf, subject.trim(), &[], is_address)?;
    who_has_later(wf, subject, all, from, orders, cx.webhook.clone());
    Ok(Answer::Later)
}

/// `/who-has` from the index; `None` when the index was never built (the caller asks
/// JumpServer live instead). Only users who can connect now (active, not expired) are
/// listed unless `all`, which marks the others: JumpServer keeps a disabled user's grants
/// "valid" (transcript 168), so validity alone would list people who cannot log in.
pub(in crate::workflow) fn indexed(
    wf: &Workflow,
    subject: &str,
    all: bool,
    from: usize,
) -> Result<Option<String>, DispatchError> {
    let Some(stats) = wf.index.stats().map_err(retry)? else {
        return Ok(None);
    };
    let subject = subject.trim();
    let (lang, tz, now) = (wf.lang(), &wf.settings.tz, wf.now());
    let again = again(lang, subject, all);
    let paging = text::lists::Paging {
        from,
        again: &again,
    };
    let is_address = target::classify(subject).is_ok_and(|t| t.is_address());
    if !is_address {
        if let Some(access) = wf.index.user_access_summary(subject, now).map_err(retry)? {
            if !access.user.is_active && !all {
                return Ok(Some(text::who_has_user_disabled(
                    lang,
                    &access.user.username,
                )));
            }
            // One line per grant: a node grant can cover hundreds of hosts.
            let whats: Vec<(String, _)> = access
                .grants
                .iter()
                .map(|g| {
                    let shown: Vec<String> = g
                        .hosts
                        .iter()
                        .take(HOSTS_PER_GRANT)
                        .map(|h| format!("{} ({})", h.name, h.address))
                        .collect();
                    (text::hosts_summary(lang, &shown, g.host_count), g)
                })
                .collect();
            let rows: Vec<text::LiveAccess<'_>> = whats
                .iter()
                .map(|(what, g)| text::LiveAccess {
                    who: &g.permission_name,
                    what,
                    accounts: wf.text().logins(&g.accounts),
                    until: g.date_expired,
                })
                .collect();
            return Ok(Some(text::who_has_indexed(
                lang,
                subject,
                &rows,
                stats.synced_at,
                tz,
                &paging,
            )));
        }
    }
    let hosts = wf.index.hosts_matching(subject).map_err(retry)?;
    if hosts.is_empty() && !is_address {
        let unknown = text::who_has_unknown(lang, subject, stats.synced_at, tz);
        return Ok(Some(match bot_orders_text(wf, subject, &hosts, false)? {
            Some(orders) => format!("{unknown}\n\n{orders}"),
            None => unknown,
        }));
    }
    let orders = bot_orders_text(wf, subject, &hosts, true)?.unwrap_or_default();
    let ids: BTreeSet<&str> = hosts.iter().map(|h| h.id.as_str()).collect();
    let addresses: BTreeSet<&str> = if hosts.is_empty() {
        BTreeSet::from([subject])
    } else {
        hosts.iter().map(|h| h.address.as_str()).collect()
    };
    let mut reach = Vec::new();
    for a in addresses {
        reach.extend(
            wf.index
                .who_can_reach(a, now)
                .map_err(retry)?
                .into_iter()
                .filter(|r| ids.is_empty() || ids.contains(r.host.id.as_str())),
        );
    }
    let total = reach.len();
    reach.retain(|r| all || r.user.is_active);
    let hidden = total - reach.len();
    let whos: Vec<String> = reach
        .iter()
        .map(|r| text::user_marked(lang, &r.user.display(), r.user.is_active))
        .collect();
    let rows: Vec<text::LiveAccess<'_>> = reach
        .iter()
        .zip(&whos)
        .map(|(r, who)| text::LiveAccess {
            who,
            what: &r.permission.name,
            accounts: wf.text().logins(&r.permission.accounts),
            until: r.permission.date_expired,
        })
        .collect();
    let mut answer = text::who_has_indexed(lang, subject, &rows, stats.synced_at, tz, &paging);
    if hidden > 0 {
        answer.push('\n');
        answer.push_str(&text::who_has_hidden(lang, hidden));
    }
    Ok(Some(format!("{answer}\n\n{orders}")))
}

/// The bot's own active orders touching `subject` (or the hosts it names), in words;
/// `None` when there are none and `always` is off (the subject may not be a host at all).
pub(in crate::workflow) fn bot_orders_text(
    wf: &Workflow,
    subject: &str,
    hosts: &[IndexedHost],
    always: bool,
) -> Result<Option<String>, DispatchError> {
    let mut names: BTreeSet<String> = BTreeSet::from([subject.to_lowercase()]);
    for h in hosts {
        names.insert(h.address.to_lowercase());
        names.insert(h.name.to_lowercase());
    }
    let touches = |t: &Target| match t {
        Target::System(s) => wf.policy.systems.iter().filter(|x| &x.name == s).any(|x| {
            names.contains(&x.name.to_lowercase())
                || x.hostnames
                    .iter()
                    .any(|h| names.contains(&h.to_lowercase()))
        }),
        other => names.contains(&other.to_string().to_lowercase()),
    };
    let active = wf.orders.list_by_state(State::Active).map_err(retry)?;
    let matching: Vec<_> = active
        .iter()
        .map(|o| (o, wf.targets_of(o)))
        .filter(|(_, ts)| ts.iter().any(touches))
        .collect();
    let words = wf.text();
    let views: Vec<text::StatusView<'_>> = matching
        .iter()
        .map(|(o, ts)| words.status_view(o, ts))
        .collect();
    if views.is_empty() && !always {
        return Ok(None);
    }
    Ok(Some(text::who_has_bot_orders(
        wf.lang(),
        &views,
        &wf.settings.tz,
    )))
}

/// `/who-has` before the first `/sync`: asks JumpServer live, answers on the webhook when
/// done; `orders` (the bot's own orders for the subject) is appended.
pub(in crate::workflow) fn who_has_later(
    wf: &Workflow,
    subject: String,
    all: bool,
    from: usize,
    orders: Option<String>,
    webhook: Option<String>,
) {
    let bastion = wf.bastion.clone();
    let policy = wf.policy.clone();
    let tz = wf.settings.tz.clone();
    let chat = wf.chat.clone();
    tokio::spawn(async move {
        let live = live(bastion.as_ref(), &policy, &subject, all, from, &tz).await;
        let answer = match orders {
            Some(o) => format!("{live}\n\n{o}"),
            None => live,
        };
        if let Some(w) = webhook {
            let msg = OutMessage::text(answer);
            if let Err(e) = chat.reply_on_session(&w, &msg).await {
                tracing::warn!(error = %e, "who-has reply failed");
            }
        }
    });
}

/// `/who-has` before the first `/sync`, asked of JumpServer directly. Only users who can
/// connect now are listed unless `all`: a disabled user's permissions stay "valid" in
/// `asset-permissions/?is_valid=1` and `users/all/` (transcript 168), so each user is looked up.
async fn live(
    jms: &dyn Bastion,
    policy: &Policy,
    subject: &str,
    all: bool,
    from: usize,
    tz: &jiff::tz::TimeZone,
) -> String {
    let lang = policy.lang;
    let again = again(lang, subject.trim(), all);
    let paging = text::lists::Paging {
        from,
        again: &again,
    };
    let en = lang == text::Lang::En;
    let subject = subject.trim();
    // An address is a host; any other word is first a JumpServer username, else a host name.
    let is_address = target::classify(subject).is_ok_and(|t| t.is_address());
    if !is_address {
        match jms.find_user(subject).await {
            Ok(Some(user)) => {
                if !user.is_active && !all {
                    return text::who_has_user_disabled(lang, &user.username);
                }
                return match jms.granted_assets(&user.id).await {
                    Ok(assets) => {
                        let whats: Vec<String> = assets
                            .iter()
                            .map(|a| format!("{} ({})", a.name, a.address))
                            .collect();
                        let who = text::user_marked(lang, &user.username, user.is_active);
                        let live: Vec<text::LiveAccess<'_>> = whats
                            .iter()
                            .map(|w| text::LiveAccess {
                                who: &who,
                                what: w,
                                accounts: String::new(),
                                until: None,
                            })
                            .collect();
                        text::who_has_live(lang, subject, &live, tz, &paging)
                    }
                    Err(e) => text::who_has_failed(lang, &e.user_message(en)),
                };
            }
            Ok(None) => {}
            Err(e) => return text::who_has_failed(lang, &e.user_message(en)),
        }
    }
    let rows = match jms.who_can_reach(subject).await {
        Ok(rows) => rows,
        Err(e) => return text::who_has_failed(lang, &e.user_message(en)),
    };
    let words = crate::chat::order::OrderText { lang, tz, policy };
    let mut active: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
    for r in &rows {
        if !active.contains_key(r.user_id.as_str()) {
            let ok = match jms.user(&r.user_id).await {
                Ok(Some(u)) => u.is_active,
                // Unknown here (another org): shown, since nothing says it cannot connect.
                Ok(None) => true,
                Err(e) => return text::who_has_failed(lang, &e.user_message(en)),
            };
            active.insert(r.user_id.as_str().to_owned(), ok);
        }
    }
    let is_active = |r: &Reacher| active.get(r.user_id.as_str()).copied().unwrap_or(true);
    let shown: Vec<&Reacher> = rows.iter().filter(|r| all || is_active(r)).collect();
    let hidden = rows.len() - shown.len();
    let whos: Vec<String> = shown
        .iter()
        .map(|r| text::user_marked(lang, &r.user_display, is_active(r)))
        .collect();
    let live: Vec<text::LiveAccess<'_>> = shown
        .iter()
        .zip(&whos)
        .map(|(r, who)| text::LiveAccess {
            who,
            what: &r.permission_name,
            accounts: words.logins(&r.accounts),
            until: r.date_expired,
        })
        .collect();
    let mut out = text::who_has_live(lang, subject, &live, tz, &paging);
    if hidden > 0 {
        out.push_str(&format!("\n{}", text::who_has_hidden(lang, hidden)));
    }
    out
}
