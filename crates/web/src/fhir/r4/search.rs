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

    /// The search of a query string written plainly, `code=a,b&date=ge2024` (no percent
    /// decoding), as the tests write theirs.
    #[cfg(test)]
    pub(crate) fn query(query: &str) -> Search {
        let pair = |p: &str| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        };
        Search::from_pairs(
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(pair)
                .collect(),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_and_offset_are_read_bounded_and_checked() {
        let whole = |name: &str, v: &str| Err(format!("{name} must be a whole number, not {v:?}"));
        // (query, the page's offset and count, or the refusal)
        let rows = [
            ("", Ok((0, 50))),
            ("_count=10", Ok((0, 10))),
            ("_count=0", Ok((0, 0))),
            ("_count=200", Ok((0, 200))),
            ("_count=1000", Ok((0, 200))),
            ("_offset=30&_count=10", Ok((30, 10))),
            ("_offset=7", Ok((7, 50))),
            ("_count=-1", whole("_count", "-1")),
            ("_count=1.5", whole("_count", "1.5")),
            ("_offset=", whole("_offset", "")),
            (
                "_offset=18446744073709551616",
                whole("_offset", "18446744073709551616"),
            ),
            ("_offset=x&_count=y", whole("_count", "y")),
            ("_count=10&_count=20", Err("give _count once".to_string())),
        ];
        for (query, expected) in rows {
            let got = Search::query(query).page().map_err(|e| {
                assert_eq!(e.kind, Kind::Invalid, "{query}");
                e.message
            });
            assert_eq!(got, expected, "{query}");
        }
    }

    #[test]
    fn parameters_a_search_does_not_know_are_refused_the_first_by_name() {
        // (query, the parameter named in the refusal, if any)
        let rows = [
            ("", None),
            (
                "_id=1&_count=5&_offset=0&_format=json&patient=Patient/1",
                None,
            ),
            ("name=x", Some("name")),
            ("zeta=1&alpha=2&_id=x", Some("alpha")),
            ("patient:missing=true", Some("patient:missing")),
            ("_sort=date", Some("_sort")),
        ];
        for (query, refused) in rows {
            match (Search::query(query).only(&["_id", "patient"]), refused) {
                (Ok(()), None) => {}
                (Err(e), Some(name)) => assert_eq!(
                    e.message,
                    format!(
                        "this server does not support the search parameter {name:?} here; supported: _id, patient"
                    )
                ),
                (got, _) => panic!("{query}: {got:?}"),
            }
        }
    }

    #[test]
    fn a_page_is_counted_across_patients_after_their_filtering() {
        /// (offset, count), how many each patient's part keeps, how many each shows, the total.
        type Row = ((usize, usize), &'static [usize], &'static [usize], usize);
        let rows: [Row; 8] = [
            ((0, 10), &[3, 4], &[3, 4], 7),
            ((0, 5), &[3, 4], &[3, 2], 7),
            ((3, 2), &[3, 4], &[0, 2], 7),
            ((5, 10), &[3, 4], &[0, 2], 7),
            ((10, 5), &[3, 4], &[0, 0], 7),
            ((0, 0), &[3, 4], &[0, 0], 7),
            ((2, 3), &[0, 2, 5], &[0, 0, 3], 7),
            ((0, 10), &[], &[], 0),
        ];
        for (page, kept, shown, total) in rows {
            let mut pager = Pager::new(page);
            let mut seen = Vec::new();
            let mut flat = Vec::new();
            for (patient, &n) in kept.iter().enumerate() {
                // Each part answers as `Reports::reports_page` does: all it kept, and the window.
                let (skip, take) = pager.window();
                let part: Vec<(usize, usize)> =
                    (0..n).map(|i| (patient, i)).skip(skip).take(take).collect();
                pager.took(n, part.len());
                seen.push(part.len());
                flat.extend(part);
            }
            assert_eq!(seen, shown, "{page:?} over {kept:?}");
            assert_eq!(pager.total, total, "{page:?} over {kept:?}");
            // The same page as the whole list, had it been one.
            let whole: Vec<(usize, usize)> = kept
                .iter()
                .enumerate()
                .flat_map(|(p, &n)| (0..n).map(move |i| (p, i)))
                .skip(page.0)
                .take(page.1)
                .collect();
            assert_eq!(flat, whole, "{page:?} over {kept:?}");
        }
    }

    #[test]
    fn a_searchset_links_its_neighbouring_pages_and_keeps_the_query() {
        let query =
            Search::query("patient=Patient/abc&code=http://loinc.org|718-7&_offset=99&_count=2");
        let url = |offset: usize| {
            format!(
                "http://h/fhir/Observation?_count=2&code=http%3A%2F%2Floinc.org%7C718-7&patient=Patient%2Fabc&_offset={offset}"
            )
        };
        /// Offset, count, total, entries shown, and the links as (relation, offset).
        type Row = (usize, usize, usize, usize, &'static [(&'static str, usize)]);
        let rows: [Row; 6] = [
            (0, 2, 5, 2, &[("self", 0), ("next", 2)]),
            (2, 2, 5, 2, &[("self", 2), ("next", 4), ("previous", 0)]),
            (4, 2, 5, 1, &[("self", 4), ("previous", 2)]),
            (0, 2, 2, 2, &[("self", 0)]),
            (0, 0, 5, 0, &[("self", 0)]),
            (1, 5, 3, 2, &[("self", 1), ("previous", 0)]),
        ];
        for (offset, count, total, shown, links) in rows {
            let entries = (0..shown)
                .map(|i| (format!("Observation/o{i}"), json!({"id": format!("o{i}")})))
                .collect();
            let page = (offset, count);
            let bundle = searchset("http://h/fhir", "Observation", &query, page, total, entries);
            let expected: Vec<Value> = links
                .iter()
                .map(|(relation, at)| json!({"relation": relation, "url": url(*at)}))
                .collect();
            assert_eq!(bundle["link"], json!(expected), "{offset} {count} {total}");
            assert_eq!(bundle["total"], total);
            assert_eq!(bundle["type"], "searchset");
            match shown {
                0 => assert!(bundle.get("entry").is_none(), "{bundle}"),
                _ => assert_eq!(
                    bundle["entry"][0],
                    json!({"fullUrl": "http://h/fhir/Observation/o0", "resource": {"id": "o0"},
                           "search": {"mode": "match"}})
                ),
            }
        }
    }
}
