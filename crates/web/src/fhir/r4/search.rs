//! What a FHIR search means here: its parameters (unknown ones refused, `_count` and `_offset`
//! read and bounded), the arithmetic of a page counted across several patients, and the
//! `searchset` Bundle with its page links. How each parameter's value is compared with a
//! resource's is `r4::matching`'s.

use medledger_records::{Error, Kind, Result};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The query string of a search, every parameter kept (FHIR repeats some), so that unknown ones
/// are refused rather than ignored: a search that silently ignored a filter would show more than
/// was asked for.
#[derive(Debug, Default)]
pub(crate) struct Search {
    params: HashMap<String, Vec<String>>,
}

/// What every search takes besides its own parameters.
const COMMON: [&str; 3] = ["_count", "_offset", "_format"];

/// Results on a page when the client does not say, and at most.
const DEFAULT_COUNT: usize = 50;
const MAX_COUNT: usize = 200;

impl Search {
    /// The search of a query string's pairs, in the order they came.
    pub(crate) fn from_pairs(pairs: Vec<(String, String)>) -> Search {
        let mut params: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            params.entry(k).or_default().push(v);
        }
        Search { params }
    }

    /// Refuses any parameter outside `known` (and the common ones).
    pub(crate) fn only(&self, known: &[&str]) -> Result<()> {
        let mut unknown: Vec<&str> = self
            .params
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k) && !COMMON.contains(k))
            .collect();
        unknown.sort_unstable();
        if let Some(first) = unknown.first() {
            return Err(Error::new(
                Kind::Invalid,
                format!(
                    "this server does not support the search parameter {first:?} here; supported: {}",
                    known.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// The one value of `name`, if given (twice is refused: these parameters are not lists).
    pub(crate) fn one(&self, name: &str) -> Result<Option<&str>> {
        match self.params.get(name).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([one]) => Ok(Some(one.as_str())),
            Some(_) => Err(Error::new(Kind::Invalid, format!("give {name} once"))),
        }
    }

    /// Every value of `name` (repeated parameters are ANDed, as FHIR says).
    pub(crate) fn all(&self, name: &str) -> &[String] {
        self.params.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `_offset` and `_count`: where the page starts and how long it is.
    pub(crate) fn page(&self) -> Result<(usize, usize)> {
        let number = |name: &str, default: usize| -> Result<usize> {
            self.one(name)?
                .map(|v| {
                    v.parse::<usize>().map_err(|_| {
                        Error::new(
                            Kind::Invalid,
                            format!("{name} must be a whole number, not {v:?}"),
                        )
                    })
                })
                .transpose()
                .map(|v| v.unwrap_or(default))
        };
        let count = number("_count", DEFAULT_COUNT)?.min(MAX_COUNT);
        Ok((number("_offset", 0)?, count))
    }

    /// The query string again, with `_offset` replaced, for a page link.
    fn with_offset(&self, offset: usize) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        let mut keys: Vec<&String> = self.params.keys().collect();
        keys.sort();
        for k in keys {
            if k != "_offset" {
                for v in &self.params[k] {
                    pairs.push((k, v));
                }
            }
        }
        let offset = offset.to_string();
        pairs.push(("_offset", &offset));
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Percent-encodes a query string's key or value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A page of a search that runs patient by patient, counted across them all after its
/// filtering: each patient's part is asked for `window()`, and tells `took` how many it kept and
/// how many it showed.
pub(crate) struct Pager {
    skip: usize,
    take: usize,
    pub(crate) total: usize,
}

impl Pager {
    pub(crate) fn new((skip, take): (usize, usize)) -> Pager {
        Pager {
            skip,
            take,
            total: 0,
        }
    }

    /// What the next part skips and shows at most.
    pub(crate) fn window(&self) -> (usize, usize) {
        (self.skip, self.take)
    }

    pub(crate) fn took(&mut self, kept: usize, shown: usize) {
        self.total += kept;
        self.skip = self.skip.saturating_sub(kept);
        self.take = self.take.saturating_sub(shown);
    }
}

/// A search's answer: one page of matches (already filtered by what the reader may see, so
/// `total` and the pages never count what they may not), with `self` and `next` links.
pub(crate) fn searchset(
    base: &str,
    kind: &str,
    search: &Search,
    (offset, count): (usize, usize),
    total: usize,
    entries: Vec<(String, Value)>,
) -> Value {
    let shown = entries.len();
    let mut links = vec![json!({
        "relation": "self",
        "url": format!("{base}/{kind}?{}", search.with_offset(offset)),
    })];
    if offset + shown < total && shown > 0 {
        links.push(json!({
            "relation": "next",
            "url": format!("{base}/{kind}?{}", search.with_offset(offset + count)),
        }));
    }
    if offset > 0 {
        links.push(json!({
            "relation": "previous",
            "url": format!("{base}/{kind}?{}", search.with_offset(offset.saturating_sub(count))),
        }));
    }
    let entry: Vec<Value> = entries
        .into_iter()
        .map(|(path, resource)| {
            json!({
                "fullUrl": format!("{base}/{path}"),
                "resource": resource,
                "search": { "mode": "match" },
            })
        })
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
    });
    if !entry.is_empty() {
        bundle["entry"] = json!(entry);
    }
    bundle
}
