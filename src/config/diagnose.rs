//! Configuration problems in words an operator can act on: where a TOML syntax error is (line
//! and column), which environment variable set a bad value, what a type is called in plain
//! words (not `i64` or `usize`), the key a misspelt one probably meant, and placeholders left
//! over from the example file.
use super::{Problem, EXAMPLE};
use std::collections::{BTreeMap, BTreeSet};

/// Values the example file ships with that must never reach a running bot: they are not
/// secrets, they are blanks to fill in. (The example's access key id is the recorded test
/// vector's and also serves the simulators, so it is not listed.)
pub const PLACEHOLDERS: &[&str] = &[
    "replace-me",
    "dingexampleappkey",
    "dingexamplecorpid",
    "o1w0aum42yaptlz8alnhwikjd3jenzt9cb9wmzptgus",
];

/// 1-based line and column (in characters) of byte offset `at` in `text`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// serde's vocabulary (`expected u64`, `invalid type: string "x"`) in plain words.
pub fn plain_words(message: &str) -> String {
    let mut m = message.to_owned();
    for (rust, words) in [
        ("expected usize", "expected a whole number (0 or more)"),
        ("expected u64", "expected a whole number (0 or more)"),
        ("expected u32", "expected a whole number (0 or more)"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
        ("expected a string", "expected text in quotes"),
        (
            "expected a sequence",
            "expected a list, like [\"a\", \"b\"]",
        ),
        ("expected a map", "expected a section"),
        ("invalid type: integer", "a number was given"),
        ("invalid type: floating point", "a decimal number was given"),
        ("invalid type: string", "text was given"),
        ("invalid type: boolean", "true/false was given"),
        ("invalid type: sequence", "a list was given"),
        ("invalid type: map", "a section was given"),
        ("invalid value: integer", "the number given is out of range"),
    ] {
        m = m.replace(rust, words);
    }
    // `expected struct FooConfig` names a Rust type; a section is what the operator writes.
    if let Some(i) = m.find("expected struct ") {
        m.truncate(i);
        m.push_str("expected a section");
    }
    m
}

/// Every key the example file names (set or commented out), as dotted paths; array-of-table
/// entries (`[[systems]]`) and free maps (`[identity.map]`) by their section.
fn known_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut section = String::new();
    for line in EXAMPLE.lines() {
        let t = line.trim();
        if let Some(s) = t
            .strip_prefix("[[")
            .and_then(|s| s.split("]]").next())
            .or_else(|| t.strip_prefix('[').and_then(|s| s.split(']').next()))
        {
            section = s.trim().to_owned();
            keys.insert(section.clone());
            continue;
        }
        let t = t.trim_start_matches('#').trim_start();
        let Some((k, _)) = t.split_once(" = ") else {
            continue;
        };
        let k = k.trim();
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            continue;
        }
        keys.insert(if section.is_empty() {
            k.to_owned()
        } else {
            format!("{section}.{k}")
        });
        if let Some(base) = k.strip_suffix("_file") {
            keys.insert(format!("{section}.{base}"));
        }
    }
    keys
}

/// Edit distance between two short keys, a swap of neighbours counting as one edit (the
/// commonest typo: `nmae` for `name`).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The known key an unknown one most likely meant: same section, a few edits away.
pub fn did_you_mean(unknown: &str) -> Option<String> {
    // `systems.0.nmae` → `systems.nmae`: array entries share their section's keys.
    let path: Vec<&str> = unknown
        .split('.')
        .filter(|s| s.parse::<usize>().is_err())
        .collect();
    let (last, section) = path.split_last()?;
    let section = section.join(".");
    let mut best: Option<(usize, String)> = None;
    for k in known_keys() {
        let (ks, kl) = match k.rsplit_once('.') {
            Some((s, l)) => (s.to_owned(), l.to_owned()),
            None => (String::new(), k.clone()),
        };
        if ks != section {
            continue;
        }
        let d = distance(last, &kl);
        let limit = (last.chars().count() / 3).clamp(1, 3);
        if d <= limit && best.as_ref().is_none_or(|(bd, _)| d < *bd) {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| k)
}

/// Problems for string values still holding an example placeholder.
pub fn placeholders(doc: &toml::Table) -> Vec<Problem> {
    let mut out = Vec::new();
    walk(doc, "", &mut |key, v| {
        if let toml::Value::String(s) = v {
            if let Some(p) = PLACEHOLDERS.iter().find(|p| s.trim() == **p) {
                out.push(Problem::error(
                    key,
                    format!("still the example's placeholder `{p}`: set the real value (or its `_file`)"),
                ));
            }
        }
    });
    out
}

fn walk(t: &toml::Table, prefix: &str, f: &mut dyn FnMut(&str, &toml::Value)) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) => walk(inner, &key, f),
            toml::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        toml::Value::Table(inner) => walk(inner, &format!("{key}.{i}"), f),
                        other => f(&key, other),
                    }
                }
            }
            other => f(&key, other),
        }
    }
}

/// Blames a problem on the environment variable that set its key, when one did: the operator
/// then looks in the right place (the file may not even contain the key).
pub fn blame_env(problems: &mut [Problem], env_keys: &BTreeMap<String, String>) {
    for p in problems.iter_mut() {
        if let Some(var) = env_keys.get(&p.key) {
            p.message = format!("{} (this variable sets `{}`)", p.message, p.key);
            p.key = var.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let text = "[server]\nlisten = 中文 x\n";
        assert_eq!(line_col(text, 0), (1, 1));
        let at = text.find('x').unwrap();
        assert_eq!(line_col(text, at), (2, 13));
    }

    #[test]
    fn types_read_as_words() {
        let m = plain_words("invalid type: string, expected u64");
        assert_eq!(m, "text was given, expected a whole number (0 or more)");
        assert!(!plain_words("invalid type: integer, expected a string").contains("string,"));
    }

    #[test]
    fn misspelt_keys_find_their_neighbour() {
        assert_eq!(
            did_you_mean("dingtalk.app_secrte").as_deref(),
            Some("dingtalk.app_secret")
        );
        assert_eq!(
            did_you_mean("workflow.retry_hour").as_deref(),
            Some("workflow.retry_hours")
        );
        assert_eq!(
            did_you_mean("systems.0.nmae").as_deref(),
            Some("systems.name")
        );
        assert_eq!(did_you_mean("dingtalk.completely_else"), None);
        // Keys only commented out in the example are known too.
        assert_eq!(
            did_you_mean("jumpserver.pasword").as_deref(),
            Some("jumpserver.password")
        );
    }
}
