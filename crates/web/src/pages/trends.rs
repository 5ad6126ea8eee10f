//! Lab trends: the numeric Observations of the FHIR bundles a patient shared, one chart per test
//! over time (server-rendered SVG, like the explorer's chart: the template prints attributes
//! laid out here), with units and reference ranges where the bundle gives them. The patient sees
//! their own; a doctor those of the reports the chain lets them see, logged on chain as views
//! of those reports before the page is shown.

use std::collections::BTreeMap;

use axum::{
    Router,
    extract::{Path, State},
    routing::get,
};
use medledger_records::{
    Error, Person,
    model::{Purpose, Role, days_from_civil},
    primitives::Address,
    reports::structured::Clinical,
};
use minijinja::context;
use serde::Serialize;
use serde_json::Value;

use super::{OrPage, Page, PageResult, v};
use crate::ApiState;

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/patient/trends", get(mine))
        .route("/doctor/patients/{address}/trends", get(doctors))
}

/// One measurement.
#[derive(Debug, Serialize)]
struct Point {
    /// As the bundle gives it (a date or a time).
    when: String,
    value: f64,
    /// Outside the reference range given with it.
    out_of_range: bool,
    cx: f64,
    cy: f64,
}

/// One test's measurements over time, laid out for the SVG.
#[derive(Debug, Serialize)]
struct Trend {
    name: String,
    /// `system|code`, as a FHIR search names it.
    code: String,
    unit: String,
    points: Vec<Point>,
    low: Option<f64>,
    high: Option<f64>,
    /// The reference band's rectangle (absent without a range).
    band: Option<(f64, f64)>,
    min: f64,
    max: f64,
    first: String,
    last: String,
    line: String,
}

/// The chart's frame: width, height, and the plot's left, right, top and bottom edges.
const FRAME: (f64, f64, f64, f64, f64, f64) = (640.0, 200.0, 70.0, 610.0, 16.0, 160.0);

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Seconds since the epoch of an R4 date or dateTime's start (its zone ignored: a chart's
/// x position, not a clock).
fn instant(when: &str) -> Option<f64> {
    let number = |s: Option<&str>| s.and_then(|s| s.parse::<i64>().ok());
    let y = number(when.get(0..4))?;
    let m = number(when.get(5..7)).unwrap_or(1);
    let d = number(when.get(8..10)).unwrap_or(1);
    let h = number(when.get(11..13)).unwrap_or(0);
    let min = number(when.get(14..16)).unwrap_or(0);
    Some((days_from_civil(y, m, d) * 86_400 + h * 3600 + min * 60) as f64)
}

/// A numeric Observation's test, unit, time, value and range.
struct Measured {
    code: String,
    name: String,
    unit: String,
    when: String,
    at: f64,
    value: f64,
    low: Option<f64>,
    high: Option<f64>,
}

fn measured(r: &Value) -> Option<Measured> {
    let quantity = &r["valueQuantity"];
    let value = quantity["value"].as_f64()?;
    let when = r["effectiveDateTime"]
        .as_str()
        .or_else(|| r["effectivePeriod"]["start"].as_str())
        .or_else(|| r["issued"].as_str())?
        .to_string();
    let coding = &r["code"]["coding"][0];
    let code = match (coding["system"].as_str(), coding["code"].as_str()) {
        (Some(s), Some(c)) => format!("{s}|{c}"),
        (None, Some(c)) => c.to_string(),
        _ => r["code"]["text"].as_str()?.to_string(),
    };
    let name = r["code"]["text"]
        .as_str()
        .or_else(|| coding["display"].as_str())
        .unwrap_or(&code)
        .to_string();
    let unit = quantity["unit"]
        .as_str()
        .or_else(|| quantity["code"].as_str())
        .unwrap_or_default()
        .to_string();
    let range = &r["referenceRange"][0];
    Some(Measured {
        code,
        name,
        unit,
        at: instant(&when)?,
        when,
        value,
        low: range["low"]["value"].as_f64(),
        high: range["high"]["value"].as_f64(),
    })
}

/// The charts of `observations`: one per test, the tests in name order, each measurement in
/// time order.
fn trends(observations: &[Clinical]) -> Vec<Trend> {
    let mut by_code: BTreeMap<String, Vec<Measured>> = BTreeMap::new();
    for m in observations.iter().filter_map(|c| measured(&c.resource)) {
        by_code.entry(m.code.clone()).or_default().push(m);
    }
    let (_, _, left, right, top, bottom) = FRAME;
    let mut out: Vec<Trend> = by_code
        .into_values()
        .map(|mut list| {
            list.sort_by(|a, b| a.at.total_cmp(&b.at));
            let low = list.iter().find_map(|m| m.low);
            let high = list.iter().find_map(|m| m.high);
            let values = list.iter().map(|m| m.value).chain(low).chain(high);
            let (mut min, mut max) =
                values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let pad = ((max - min) * 0.1).max(max.abs() * 0.05).max(0.5);
            min -= pad;
            max += pad;
            let y = |v: f64| round1(bottom - (bottom - top) * (v - min) / (max - min));
            let (t0, t1) = (list[0].at, list[list.len() - 1].at);
            let x = |t: f64| {
                if t1 > t0 {
                    round1(left + (right - left) * (t - t0) / (t1 - t0))
                } else {
                    round1((left + right) / 2.0)
                }
            };
            let points: Vec<Point> = list
                .iter()
                .map(|m| Point {
                    when: m.when.clone(),
                    value: m.value,
                    out_of_range: m.low.is_some_and(|l| m.value < l)
                        || m.high.is_some_and(|h| m.value > h),
                    cx: x(m.at),
                    cy: y(m.value),
                })
                .collect();
            let line = points
                .iter()
                .map(|p| format!("{},{}", p.cx, p.cy))
                .collect::<Vec<_>>()
                .join(" ");
            let band = match (low, high) {
                (None, None) => None,
                (l, h) => {
                    let top_y = h.map_or(top, y);
                    let bottom_y = l.map_or(bottom, y);
                    Some((top_y, round1(bottom_y - top_y)))
                }
            };
            Trend {
                name: list[0].name.clone(),
                code: list[0].code.clone(),
                unit: list[0].unit.clone(),
                low,
                high,
                band,
                min: round1(min),
                max: round1(max),
                first: list[0].when.chars().take(10).collect(),
                last: list[list.len() - 1].when.chars().take(10).collect(),
                points,
                line,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The trends page of `patient` for `me`.
async fn trends_page(state: &ApiState, page: &Page, me: &Person, patient: Address) -> PageResult {
    let (_, observations) = state
        .app
        .reports()
        .clinical_page(
            me,
            patient,
            Purpose::Treatment,
            "lab results",
            |c| c.resource["resourceType"] == "Observation" && measured(&c.resource).is_some(),
            0,
            usize::MAX,
        )
        .await
        .or_page(page, state)?;
    let (w, h, left, right, top, bottom) = FRAME;
    Ok(page.render(
        state,
        "trends.html",
        context! {
            patient => patient.to_string(),
            own => me.address == patient,
            trends => v(&trends(&observations)),
            frame => context! { width => w, height => h, left => left, right => right, top => top, bottom => bottom },
        },
    ))
}

/// `GET /patient/trends`.
async fn mine(State(state): State<ApiState>, page: Page) -> PageResult {
    let me = page.require(&state, Role::Patient)?;
    trends_page(&state, &page, &me, me.address).await
}

/// `GET /doctor/patients/{address}/trends`.
async fn doctors(State(state): State<ApiState>, page: Page, Path(raw): Path<String>) -> PageResult {
    let me = page.require(&state, Role::Doctor)?;
    let patient: Address = raw
        .trim()
        .parse()
        .map_err(|_| page.fail(&state, Error::invalid("that is not an account address")))?;
    trends_page(&state, &page, &me, patient).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_records::primitives::B256;
    use serde_json::json;

    fn observation(code: &str, when: &str, value: f64, range: Option<(f64, f64)>) -> Clinical {
        let mut r = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}], "text": code},
            "effectiveDateTime": when, "valueQuantity": {"value": value, "unit": "g/dL"}});
        if let Some((low, high)) = range {
            r["referenceRange"] = json!([{"low": {"value": low}, "high": {"value": high}}]);
        }
        Clinical {
            record: B256::ZERO,
            patient: Address::ZERO,
            index: 1,
            resource: r,
            targets: Default::default(),
        }
    }

    #[test]
    fn instants_are_seconds_from_the_epoch() {
        assert_eq!(instant("1970-01-02"), Some(86_400.0));
        let day = instant("2026-01-01").unwrap();
        assert_eq!(instant("2026-01-02"), Some(day + 86_400.0));
        assert_eq!(instant("2026-01-01T09:30:00Z"), Some(day + 34_200.0));
    }

    #[test]
    fn measurements_are_laid_out_in_time_with_their_range() {
        let list = [
            observation("hb", "2026-03-01", 10.0, Some((12.0, 16.0))),
            observation("hb", "2026-01-01T09:00:00Z", 13.0, Some((12.0, 16.0))),
            observation("crp", "2026-01-01", 4.0, None),
        ];
        let t = trends(&list);
        assert_eq!(t.len(), 2);
        let hb = t.iter().find(|t| t.name == "hb").unwrap();
        assert_eq!(hb.points.len(), 2);
        assert_eq!(hb.points[0].value, 13.0, "time order");
        assert!(!hb.points[0].out_of_range && hb.points[1].out_of_range);
        assert_eq!((hb.points[0].cx, hb.points[1].cx), (FRAME.2, FRAME.3));
        assert!(
            hb.points[1].cy > hb.points[0].cy,
            "lower value, lower on the chart"
        );
        let (band_y, band_h) = hb.band.unwrap();
        assert!(band_y < hb.points[0].cy && band_y + band_h > hb.points[0].cy);
        assert_eq!(hb.first, "2026-01-01");
        let crp = t.iter().find(|t| t.name == "crp").unwrap();
        assert_eq!(
            crp.points[0].cx,
            (FRAME.2 + FRAME.3) / 2.0,
            "one point: centred"
        );
        assert!(crp.band.is_none());
    }
}
