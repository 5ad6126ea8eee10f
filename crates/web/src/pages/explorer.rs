//! The ledger explorer (Ganache's window onto the chain, as pages): the latest blocks with a chart
//! of gas and transactions per block, a block, a transaction with its decoded contract call and
//! events, an account, and the three deployed contracts. It reads the chain only, through the
//! ledger's read-only provider: nothing from the app database appears here, so the explorer shows
//! exactly what anyone with a JSON-RPC connection to the chain could see.

use std::fmt::Display;

use alloy::{
    consensus::Transaction as _,
    primitives::{Address, B256, U256},
    providers::{DynProvider, Provider},
    rpc::types::{Block, Filter, Log, Transaction, TransactionReceipt},
    sol_types::{SolEvent, SolEventInterface, SolInterface},
};
use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use medledger_records::{
    Contracts, Error, Kind,
    contracts::{Consent, Records, Registry},
    model::Role,
};
use minijinja::{Value, context, value::Serde};
use serde::Serialize;

use super::{Page, PageResult};
use crate::ApiState;

/// Blocks listed on the index page.
const LATEST: u64 = 20;
/// Blocks drawn in the index page's chart.
const CHART: u64 = 50;
/// Blocks an account page scans for the account's transactions: an explorer without an index
/// can only walk blocks, so the walk is bounded (and the page says so).
const SCAN: u64 = 2_000;
/// Transactions listed on an account page at most (the most recent first).
const ACCOUNT_ROWS: usize = 500;
/// Block requests in flight at once: enough to hide the round trips, few enough not to crowd
/// out the app's own requests to the node.
const IN_FLIGHT: usize = 16;

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/explorer", get(index))
        .route("/explorer/search", get(search))
        .route("/explorer/block/{n}", get(block))
        .route("/explorer/tx/{hash}", get(transaction))
        .route("/explorer/address/{addr}", get(address))
        .route("/explorer/contracts", get(contracts))
}

// ------------------------------------------------------------------------------- chain access

/// A node that did not answer: the detail goes to the log, the reader gets a sentence.
fn unavailable(e: impl Display) -> Error {
    tracing::warn!("explorer: the ledger did not answer: {e}");
    Error::new(
        Kind::Unavailable,
        "the ledger did not answer; try again in a moment",
    )
}

async fn latest_number(p: &DynProvider) -> Result<u64, Error> {
    p.get_block_number().await.map_err(unavailable)
}

/// Blocks `numbers` (which all exist), fetched a few at a time, in the order asked.
async fn fetch_blocks(p: &DynProvider, numbers: &[u64], full: bool) -> Result<Vec<Block>, Error> {
    let mut out = Vec::with_capacity(numbers.len());
    for chunk in numbers.chunks(IN_FLIGHT) {
        let mut set = tokio::task::JoinSet::new();
        for (i, &n) in chunk.iter().enumerate() {
            let p = p.clone();
            set.spawn(async move {
                let request = p.get_block_by_number(n.into());
                let block = if full {
                    request.full().await
                } else {
                    request.await
                };
                (i, n, block)
            });
        }
        let mut got: Vec<Option<Block>> = (0..chunk.len()).map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            let (i, n, block) = joined.map_err(|e| Error::internal("explorer block fetch", e))?;
            // A block below the latest that the node cannot find is the node's fault, not the
            // reader's.
            got[i] = Some(block.map_err(unavailable)?.ok_or_else(|| {
                Error::internal("explorer", format!("block {n} is missing from the node"))
            })?);
        }
        out.extend(got.into_iter().flatten());
    }
    Ok(out)
}

/// The number range `[latest - count + 1, latest]`, clipped at genesis.
fn last_numbers(latest: u64, count: u64) -> Vec<u64> {
    (latest.saturating_sub(count - 1)..=latest).collect()
}

/// A serde value for a template context.
fn ser<T: Serialize>(value: &T) -> Value {
    Value::from(Serde(value))
}

// --------------------------------------------------------------------------------- decoding

/// One of the three medledger contracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Registry,
    Records,
    Consent,
}

impl Known {
    fn of(contracts: &Contracts, address: Address) -> Option<Known> {
        if address == contracts.registry {
            Some(Known::Registry)
        } else if address == contracts.records {
            Some(Known::Records)
        } else if address == contracts.consent {
            Some(Known::Consent)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Known::Registry => "Registry",
            Known::Records => "Records",
            Known::Consent => "Consent",
        }
    }
}

fn known_name(contracts: &Contracts, address: Option<Address>) -> Option<&'static str> {
    address
        .and_then(|a| Known::of(contracts, a))
        .map(Known::name)
}

/// A decoded call or event: its name and its arguments as name = value.
#[derive(Debug, Serialize)]
struct Decoded {
    name: String,
    args: Vec<Arg>,
}

#[derive(Debug, Serialize)]
struct Arg {
    name: String,
    value: String,
    /// The value as a checksummed address, when it is one (the page links it).
    address: Option<String>,
}

impl Arg {
    fn new(name: &str, value: &str) -> Arg {
        let address = hex_of(value, 40)
            .filter(|_| value.starts_with("0x"))
            .and_then(|h| h.parse::<Address>().ok());
        let value = match (address, enum_member(name, value)) {
            (Some(a), _) => a.to_string(),
            (None, Some(member)) => format!("{value} ({member})"),
            (None, None) => value.to_string(),
        };
        Arg {
            name: name.to_string(),
            value,
            address: address.map(|a| a.to_string()),
        }
    }
}

/// The member name of a contract enum argument: the ABI carries enums as bare `uint8`, so the
/// names come from the Solidity sources (`Records.Kind`, `Consent.Purpose`, `Consent.Scope`).
fn enum_member(name: &str, value: &str) -> Option<&'static str> {
    let members: &[&'static str] = match name {
        "kind" => &["Report", "Prescription", "Other"],
        "purpose" => &["Treatment", "Research"],
        "scope" => &["All", "Kinds", "Records"],
        _ => return None,
    };
    members.get(value.parse::<usize>().ok()?).copied()
}

/// The function a call's input selects, by name (for lists), without decoding its arguments.
fn method_name(contracts: &Contracts, tx: &Transaction) -> String {
    let Some(to) = tx.to() else {
        return "contract creation".into();
    };
    let input = tx.input();
    if input.is_empty() {
        return "ether transfer".into();
    }
    let Some(selector) = input.get(..4).and_then(|s| <[u8; 4]>::try_from(s).ok()) else {
        return "(short input)".into();
    };
    let name = match Known::of(contracts, to) {
        Some(Known::Registry) => Registry::RegistryCalls::name_by_selector(selector),
        Some(Known::Records) => Records::RecordsCalls::name_by_selector(selector),
        Some(Known::Consent) => Consent::ConsentCalls::name_by_selector(selector),
        None => None,
    };
    name.map_or_else(|| format!("0x{}", hex::encode(selector)), str::to_string)
}

/// A call to one of the contracts, decoded with its `sol!` binding; None when the input does not
/// decode (a call to another address, or a malformed one).
fn decode_call(known: Known, input: &[u8]) -> Option<Decoded> {
    let selector: [u8; 4] = input.get(..4)?.try_into().ok()?;
    let (name, debug) = match known {
        Known::Registry => (
            Registry::RegistryCalls::name_by_selector(selector)?,
            format!("{:?}", Registry::RegistryCalls::abi_decode(input).ok()?),
        ),
        Known::Records => (
            Records::RecordsCalls::name_by_selector(selector)?,
            format!("{:?}", Records::RecordsCalls::abi_decode(input).ok()?),
        ),
        Known::Consent => (
            Consent::ConsentCalls::name_by_selector(selector)?,
            format!("{:?}", Consent::ConsentCalls::abi_decode(input).ok()?),
        ),
    };
    Some(Decoded {
        name: name.to_string(),
        args: debug_fields(&debug),
    })
}

/// A log of one of the contracts, decoded with its `sol!` binding.
fn decode_event(known: Known, log: &Log) -> Option<Decoded> {
    let topic = *log.topic0()?;
    let (name, debug) = match known {
        Known::Registry => (
            Registry::RegistryEvents::name_by_selector(topic.0)?,
            format!(
                "{:?}",
                Registry::RegistryEvents::decode_log(&log.inner).ok()?.data
            ),
        ),
        Known::Records => (
            Records::RecordsEvents::name_by_selector(topic.0)?,
            format!(
                "{:?}",
                Records::RecordsEvents::decode_log(&log.inner).ok()?.data
            ),
        ),
        Known::Consent => (
            Consent::ConsentEvents::name_by_selector(topic.0)?,
            format!(
                "{:?}",
                Consent::ConsentEvents::decode_log(&log.inner).ok()?.data
            ),
        ),
    };
    Some(Decoded {
        name: name.to_string(),
        args: debug_fields(&debug),
    })
}

/// The fields of a decoded value's Debug text, `Variant(Type { a: 1, b: "x" })`, as name = value
/// pairs. The `sol!` types carry no field-name reflection, and their derived Debug is the one
/// place the field names and the formatted values meet. A field that does not have that shape
/// comes back whole, as an unnamed value.
fn debug_fields(debug: &str) -> Vec<Arg> {
    let (Some(open), Some(close)) = (debug.find('{'), debug.rfind('}')) else {
        // A call or event without arguments: `Variant(TypeCall)`.
        return Vec::new();
    };
    if open >= close {
        return vec![Arg::new("", debug)];
    }
    split_top_level(&debug[open + 1..close])
        .into_iter()
        .map(|field| match field.split_once(": ") {
            Some((name, value))
                if !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Arg::new(name, value)
            }
            _ => Arg::new("", field),
        })
        .collect()
}

/// Splits `a: 1, b: [2, 3], c: "x, y"` at the commas that are outside brackets and strings.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut start) = (0i32, false, false, 0);
    for (i, c) in s.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = s[start..].trim();
    if !last.is_empty() {
        parts.push(last);
    }
    parts
}

// ---------------------------------------------------------------------------------- parsing

/// A block number from the path: decimal digits only.
fn parse_number(s: &str) -> Result<u64, Error> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(format!(
            "“{}” is not a block number: use decimal digits, like 42",
            clip(s)
        )));
    }
    s.parse()
        .map_err(|_| Error::invalid("that block number is far beyond any chain"))
}

/// `0x` and exactly `digits` hex digits (the prefix is optional, for pasted values).
fn hex_of(s: &str, digits: usize) -> Option<&str> {
    let h = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    (h.len() == digits && h.bytes().all(|b| b.is_ascii_hexdigit())).then_some(h)
}

fn parse_hash(s: &str) -> Result<B256, Error> {
    hex_of(s, 64).and_then(|h| h.parse().ok()).ok_or_else(|| {
        Error::invalid(format!(
            "“{}” is not a transaction hash: it is 0x and 64 hex digits",
            clip(s)
        ))
    })
}

fn parse_address(s: &str) -> Result<Address, Error> {
    hex_of(s, 40).and_then(|h| h.parse().ok()).ok_or_else(|| {
        Error::invalid(format!(
            "“{}” is not an address: it is 0x and 40 hex digits",
            clip(s)
        ))
    })
}

/// Echoed input, cut short (it lands in a page).
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

// ------------------------------------------------------------------------------------ index

#[derive(Serialize)]
struct BlockRow {
    number: u64,
    hash: String,
    time: u64,
    txs: usize,
    gas_used: u64,
    gas_limit: u64,
}

fn block_row(b: &Block) -> BlockRow {
    BlockRow {
        number: b.header.number,
        hash: b.header.hash.to_string(),
        time: b.header.timestamp,
        txs: b.transactions.len(),
        gas_used: b.header.gas_used,
        gas_limit: b.header.gas_limit,
    }
}

/// The chart of gas used (bars, left scale) and transactions (line, right scale) per block, laid
/// out here so the template only prints SVG attributes (no scripts or inline styles: the CSP
/// allows neither).
#[derive(Serialize)]
struct Chart {
    width: u32,
    height: u32,
    left: u32,
    right: u32,
    top: u32,
    bottom: u32,
    mid: f64,
    max_gas: u64,
    max_txs: u64,
    first: u64,
    last: u64,
    bars: Vec<Bar>,
    /// The transaction line's `points` attribute.
    line: String,
}

#[derive(Serialize)]
struct Bar {
    number: u64,
    gas: u64,
    txs: usize,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    /// The transaction dot.
    cx: f64,
    cy: f64,
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn chart(rows: &[BlockRow]) -> Chart {
    let (width, height, left, right, top, bottom) = (800u32, 260u32, 70u32, 740u32, 20u32, 220u32);
    let plot_w = f64::from(right - left);
    let plot_h = f64::from(bottom - top);
    let max_gas = rows.iter().map(|r| r.gas_used).max().unwrap_or(0).max(1);
    let max_txs = rows.iter().map(|r| r.txs).max().unwrap_or(0).max(1) as u64;
    let slot = plot_w / rows.len().max(1) as f64;
    let bars: Vec<Bar> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let h = plot_h * r.gas_used as f64 / max_gas as f64;
            let x = f64::from(left) + slot * i as f64;
            Bar {
                number: r.number,
                gas: r.gas_used,
                txs: r.txs,
                x: round1(x + slot * 0.15),
                y: round1(f64::from(bottom) - h),
                w: round1(slot * 0.7),
                h: round1(h),
                cx: round1(x + slot / 2.0),
                cy: round1(f64::from(bottom) - plot_h * r.txs as f64 / max_txs as f64),
            }
        })
        .collect();
    let line = bars
        .iter()
        .map(|b| format!("{},{}", b.cx, b.cy))
        .collect::<Vec<_>>()
        .join(" ");
    Chart {
        width,
        height,
        left,
        right,
        top,
        bottom,
        mid: f64::from(top + bottom) / 2.0,
        max_gas,
        max_txs,
        first: rows.first().map_or(0, |r| r.number),
        last: rows.last().map_or(0, |r| r.number),
        bars,
        line,
    }
}

/// `GET /explorer`: the latest blocks, the chart, the search box.
async fn index(State(state): State<ApiState>, page: Page) -> Response {
    index_page(&state, &page, StatusCode::OK, "", None).await
}

/// The index page, with `search_error` beside the search box (and `status`) after a bad search.
async fn index_page(
    state: &ApiState,
    page: &Page,
    status: StatusCode,
    query: &str,
    search_error: Option<Error>,
) -> Response {
    let p = state.app.ledger().provider();
    let loaded = async {
        let latest = latest_number(p).await?;
        let blocks = fetch_blocks(p, &last_numbers(latest, CHART), false).await?;
        Ok::<_, Error>((latest, blocks))
    }
    .await;
    let (latest, blocks) = match loaded {
        Ok(l) => l,
        // Without the chain there is no index to show the search error on: show the error alone.
        Err(e) => return page.fail(state, search_error.unwrap_or(e)),
    };
    let rows: Vec<BlockRow> = blocks.iter().map(block_row).collect();
    let chart = chart(&rows);
    let recent: Vec<&BlockRow> = rows.iter().rev().take(LATEST as usize).collect();
    let shown_txs: usize = rows.iter().map(|r| r.txs).sum();
    page.render_status(
        state,
        status,
        "explorer/index.html",
        context! {
            latest => latest,
            chain_id => state.app.ledger().chain_id(),
            blocks => ser(&recent),
            chart => ser(&chart),
            chart_txs => shown_txs,
            q => query,
            search_error => search_error.map(|e| e.message),
        },
    )
}

/// `GET /explorer/search?q=`: a block number, a transaction (or block) hash, or an address, sent
/// to its page; anything else back to the index with the reason.
async fn search(State(state): State<ApiState>, page: Page) -> Response {
    let q = page
        .query
        .get("q")
        .map(|q| q.trim())
        .unwrap_or("")
        .to_string();
    match resolve(&state, &q).await {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(e) if e.kind == Kind::Unavailable => page.fail(&state, e),
        Err(e) => {
            let status = crate::error::answered(&e);
            index_page(&state, &page, status, &q, Some(e)).await
        }
    }
}

async fn resolve(state: &ApiState, q: &str) -> Result<String, Error> {
    if q.is_empty() {
        return Err(Error::invalid(
            "type a block number, a transaction hash or an address to search for",
        ));
    }
    if q.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(format!("/explorer/block/{}", parse_number(q)?));
    }
    if hex_of(q, 40).is_some() {
        return Ok(format!("/explorer/address/{}", parse_address(q)?));
    }
    if hex_of(q, 64).is_some() {
        let hash = parse_hash(q)?;
        let p = state.app.ledger().provider();
        if p.get_transaction_by_hash(hash)
            .await
            .map_err(unavailable)?
            .is_some()
        {
            return Ok(format!("/explorer/tx/{hash}"));
        }
        if let Some(b) = p.get_block_by_hash(hash).await.map_err(unavailable)? {
            return Ok(format!("/explorer/block/{}", b.header.number));
        }
        return Err(Error::not_found(format!(
            "no transaction or block on this chain has the hash {hash}"
        )));
    }
    Err(Error::invalid(format!(
        "“{}” is not a block number, a transaction hash (0x and 64 hex digits) or an address (0x and 40 hex digits)",
        clip(q)
    )))
}

// ------------------------------------------------------------------------------------ block

#[derive(Serialize)]
struct TxRow {
    hash: String,
    block: Option<u64>,
    time: Option<u64>,
    from: String,
    to: Option<String>,
    to_name: Option<&'static str>,
    /// For a contract creation: the address it creates.
    created: Option<String>,
    method: String,
    value: String,
    /// On an account page: out, in, self or create.
    direction: &'static str,
}

fn tx_row(contracts: &Contracts, tx: &Transaction, time: Option<u64>) -> TxRow {
    let from = tx.inner.signer();
    let to = tx.to();
    TxRow {
        hash: tx.inner.hash().to_string(),
        block: tx.block_number,
        time,
        from: from.to_string(),
        to: to.map(|a| a.to_string()),
        to_name: known_name(contracts, to),
        created: to.is_none().then(|| from.create(tx.nonce()).to_string()),
        method: method_name(contracts, tx),
        value: tx.value().to_string(),
        direction: "",
    }
}

/// `GET /explorer/block/{n}`: a block by number, or by its `0x` hash (as other explorers link).
async fn block(State(state): State<ApiState>, page: Page, Path(n): Path<String>) -> PageResult {
    let p = state.app.ledger().provider();
    let fail = |e| page.fail(&state, e);
    let found = if hex_of(&n, 64).is_some() && n.starts_with("0x") {
        let hash = parse_hash(&n).map_err(fail)?;
        p.get_block_by_hash(hash).full().await
    } else {
        let number = parse_number(&n).map_err(fail)?;
        p.get_block_by_number(number.into()).full().await
    };
    let b = found
        .map_err(|e| fail(unavailable(e)))?
        .ok_or_else(|| fail(Error::not_found("there is no such block on this chain")))?;
    let latest = latest_number(p).await.map_err(fail)?;
    let contracts = state.app.contracts();
    let h = &b.header;
    let txs: Vec<TxRow> = b
        .transactions
        .txns()
        .map(|tx| tx_row(&contracts, tx, Some(h.timestamp)))
        .collect();
    Ok(page.render(
        &state,
        "explorer/block.html",
        context! {
            number => h.number,
            hash => h.hash.to_string(),
            parent_hash => h.parent_hash.to_string(),
            parent => h.number.checked_sub(1),
            next => (h.number < latest).then_some(h.number + 1),
            time => h.timestamp,
            gas_used => h.gas_used,
            gas_limit => h.gas_limit,
            gas_percent => h.gas_used.saturating_mul(100).checked_div(h.gas_limit).unwrap_or(0),
            base_fee => h.base_fee_per_gas.map(|f| f.to_string()),
            miner => h.beneficiary.to_string(),
            state_root => h.state_root.to_string(),
            txs => ser(&txs),
        },
    ))
}

// ------------------------------------------------------------------------------ transaction

#[derive(Serialize)]
struct EventRow {
    index: Option<u64>,
    address: String,
    contract: Option<&'static str>,
    event: Option<Decoded>,
    /// An undecoded log's topics and data length.
    topics: Vec<String>,
    data_len: usize,
}

/// `GET /explorer/tx/{hash}`: a transaction, its receipt, its decoded call and events.
async fn transaction(
    State(state): State<ApiState>,
    page: Page,
    Path(hash): Path<String>,
) -> PageResult {
    let p = state.app.ledger().provider();
    let fail = |e| page.fail(&state, e);
    let hash = parse_hash(&hash).map_err(fail)?;
    let tx = p
        .get_transaction_by_hash(hash)
        .await
        .map_err(|e| fail(unavailable(e)))?
        .ok_or_else(|| {
            fail(Error::not_found(
                "there is no such transaction on this chain",
            ))
        })?;
    let receipt: Option<TransactionReceipt> = p
        .get_transaction_receipt(hash)
        .await
        .map_err(|e| fail(unavailable(e)))?;
    let time = match tx.block_number {
        Some(n) => p
            .get_block_by_number(n.into())
            .await
            .map_err(|e| fail(unavailable(e)))?
            .map(|b| b.header.timestamp),
        None => None,
    };
    let contracts = state.app.contracts();
    let row = tx_row(&contracts, &tx, time);
    let input = tx.input();
    let to_known = tx.to().and_then(|a| Known::of(&contracts, a));
    let call = to_known.and_then(|k| decode_call(k, input));
    let created = receipt
        .as_ref()
        .and_then(|r| r.contract_address)
        .or_else(|| {
            tx.to()
                .is_none()
                .then(|| tx.inner.signer().create(tx.nonce()))
        });
    let events: Vec<EventRow> = receipt
        .as_ref()
        .map(|r| {
            r.inner
                .logs()
                .iter()
                .map(|log| event_row(&contracts, log))
                .collect()
        })
        .unwrap_or_default();
    let (status, gas_used, gas_price, fee) = match &receipt {
        Some(r) => {
            let price = U256::from(r.effective_gas_price);
            (
                if r.status() { "success" } else { "reverted" },
                Some(r.gas_used),
                Some(price.to_string()),
                Some((price * U256::from(r.gas_used)).to_string()),
            )
        }
        None => ("pending", None, None, None),
    };
    Ok(page.render(
        &state,
        "explorer/tx.html",
        context! {
            // Not `tx`: the layout reads that name for its confirmation box.
            txn => ser(&row),
            index => tx.transaction_index,
            nonce => tx.nonce(),
            gas_limit => tx.gas_limit(),
            tx_type => alloy::eips::Typed2718::ty(&tx.inner),
            status => status,
            gas_used => gas_used,
            gas_price => gas_price,
            fee => fee,
            created => created.map(|a| a.to_string()),
            created_name => known_name(&contracts, created),
            call => ser(&call),
            input_len => input.len(),
            selector => input.get(..4).map(|s| format!("0x{}", hex::encode(s))),
            events => ser(&events),
        },
    ))
}

fn event_row(contracts: &Contracts, log: &Log) -> EventRow {
    let known = Known::of(contracts, log.address());
    let event = known.and_then(|k| decode_event(k, log));
    let undecoded = event.is_none();
    EventRow {
        index: log.log_index,
        address: log.address().to_string(),
        contract: known.map(Known::name),
        event,
        topics: if undecoded {
            log.topics().iter().map(|t| t.to_string()).collect()
        } else {
            Vec::new()
        },
        data_len: log.data().data.len(),
    }
}

// ---------------------------------------------------------------------------------- address

/// `GET /explorer/address/{addr}`: an account's balance, nonce, code, and its transactions
/// among the latest blocks.
async fn address(
    State(state): State<ApiState>,
    page: Page,
    Path(addr): Path<String>,
) -> PageResult {
    let p = state.app.ledger().provider();
    let fail = |e| page.fail(&state, e);
    let account = parse_address(&addr).map_err(fail)?;
    let contracts = state.app.contracts();
    let (balance, nonce, code, latest) = tokio::try_join!(
        async { p.get_balance(account).await.map_err(unavailable) },
        async { p.get_transaction_count(account).await.map_err(unavailable) },
        async { p.get_code_at(account).await.map_err(unavailable) },
        latest_number(p),
    )
    .map_err(fail)?;
    // The Registry's role for the account: public directory data, and the one way to tell a
    // patient's or doctor's account from any other.
    let role = match state.app.role_on_chain(account).await {
        Ok(Role::None) => None,
        Ok(role) => Some(role.as_str()),
        // A contract or odd account the Registry cannot answer for: show no role rather than
        // fail the page.
        Err(_) => None,
    };
    let numbers = last_numbers(latest, SCAN);
    let blocks = fetch_blocks(p, &numbers, true).await.map_err(fail)?;
    let mut rows = Vec::new();
    for b in blocks.iter().rev() {
        let txs: Vec<&Transaction> = b.transactions.txns().collect();
        for tx in txs.into_iter().rev() {
            let from = tx.inner.signer();
            let to = tx.to();
            let creates = to.is_none() && from.create(tx.nonce()) == account;
            let direction = match (from == account, to == Some(account)) {
                (true, true) => "self",
                (true, false) => "out",
                (false, true) => "in",
                (false, false) if creates => "create",
                (false, false) => continue,
            };
            let mut row = tx_row(&contracts, tx, Some(b.header.timestamp));
            row.direction = direction;
            rows.push(row);
        }
    }
    let total = rows.len();
    rows.truncate(ACCOUNT_ROWS);
    Ok(page.render(
        &state,
        "explorer/address.html",
        context! {
            address => account.to_string(),
            balance => balance.to_string(),
            nonce => nonce,
            is_contract => !code.is_empty(),
            code_len => code.len(),
            contract => Known::of(&contracts, account).map(Known::name),
            role => role,
            txs => ser(&rows),
            total => total,
            limit => ACCOUNT_ROWS,
            scan_from => numbers.first().copied().unwrap_or(0),
            scan_to => latest,
            scan => SCAN,
        },
    ))
}

// -------------------------------------------------------------------------------- contracts

#[derive(Serialize)]
struct ContractRow {
    name: &'static str,
    address: String,
    about: &'static str,
    code_len: usize,
    counts: Vec<(&'static str, String)>,
}

/// `GET /explorer/contracts`: the three deployed contracts and what they hold.
async fn contracts(State(state): State<ApiState>, page: Page) -> PageResult {
    let p = state.app.ledger().provider();
    let c = state.app.contracts();
    let fail = |e| page.fail(&state, e);
    let read = |e: alloy::contract::Error| unavailable(e);
    let registry = Registry::new(c.registry, p.clone());
    let consent = Consent::new(c.consent, p.clone());
    let (hospitals, doctors, patients, admins, grants, window) = tokio::try_join!(
        async { registry.hospitalCount().call().await.map_err(read) },
        async { registry.doctorCount().call().await.map_err(read) },
        async { registry.patientCount().call().await.map_err(read) },
        async { registry.adminCount().call().await.map_err(read) },
        async { consent.grantCount().call().await.map_err(read) },
        async { consent.emergencyWindow().call().await.map_err(read) },
    )
    .map_err(fail)?;
    // Records keeps no global count; its events do (anchors, and openings on Consent).
    let count_events = |address: Address, topic: B256| {
        let filter = Filter::new()
            .address(address)
            .event_signature(topic)
            .from_block(c.deployed_at);
        async move {
            p.get_logs(&filter)
                .await
                .map(|l| l.len())
                .map_err(unavailable)
        }
    };
    let (anchored, opened, emergencies) = tokio::try_join!(
        count_events(c.records, Records::RecordAnchored::SIGNATURE_HASH),
        count_events(c.consent, Consent::AccessLogged::SIGNATURE_HASH),
        count_events(c.consent, Consent::EmergencyDeclared::SIGNATURE_HASH),
    )
    .map_err(fail)?;
    let (code_registry, code_records, code_consent) = tokio::try_join!(
        async { p.get_code_at(c.registry).await.map_err(unavailable) },
        async { p.get_code_at(c.records).await.map_err(unavailable) },
        async { p.get_code_at(c.consent).await.map_err(unavailable) },
    )
    .map_err(fail)?;
    let rows = vec![
        ContractRow {
            name: "Registry",
            address: c.registry.to_string(),
            about: "the directory: admins, hospitals, doctors, and patient registrations (bare addresses)",
            code_len: code_registry.len(),
            counts: vec![
                ("hospitals", hospitals.to_string()),
                ("doctors", doctors.to_string()),
                ("patients", patients.to_string()),
                ("admins", admins.to_string()),
            ],
        },
        ContractRow {
            name: "Records",
            address: c.records.to_string(),
            about: "record anchors: a random id, the kind, and the hash of the encrypted body",
            code_len: code_records.len(),
            counts: vec![("records anchored", anchored.to_string())],
        },
        ContractRow {
            name: "Consent",
            address: c.consent.to_string(),
            about: "grants, emergencies (break-glass) and the log of every opening of a record",
            code_len: code_consent.len(),
            counts: vec![
                ("grants", grants.to_string()),
                ("openings logged", opened.to_string()),
                ("emergencies declared", emergencies.to_string()),
                ("emergency window (hours)", (window / 3600).to_string()),
            ],
        },
    ];
    Ok(page.render(
        &state,
        "explorer/contracts.html",
        context! {
            contracts => ser(&rows),
            deployed_at => c.deployed_at,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_text_becomes_named_fields() {
        let args = debug_fields(
            r#"addHospital(addHospitalCall { name: "A, \"B\" {x}", city: "Lyon", ids: [0x01, 0x02], kind: Report })"#,
        );
        let pairs: Vec<(&str, &str)> = args
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("name", r#""A, \"B\" {x}""#),
                ("city", r#""Lyon""#),
                ("ids", "[0x01, 0x02]"),
                ("kind", "Report"),
            ]
        );
        assert!(debug_fields("registerPatient(registerPatientCall)").is_empty());
        let anchored = debug_fields(
            "RecordAnchored(RecordAnchored { patient: 0x9222c6b72daa0be0e941a431989ae14882b897c2, kind: 1 })",
        );
        assert_eq!(
            anchored[0].address.as_deref(),
            Some("0x9222C6b72dAA0be0E941a431989AE14882B897C2")
        );
        assert_eq!(
            anchored[0].value,
            "0x9222C6b72dAA0be0E941a431989AE14882B897C2"
        );
        assert_eq!(anchored[1].value, "1 (Prescription)");
    }

    #[test]
    fn the_contracts_calls_decode_by_name() {
        let call = Registry::addHospitalCall {
            name: "Hôpital Nord".into(),
            city: "Lyon".into(),
            addr: String::new(),
            specialties: "cardiology".into(),
            services: String::new(),
            contact: String::new(),
        };
        let input = alloy::sol_types::SolCall::abi_encode(&call);
        let decoded = decode_call(Known::Registry, &input).unwrap();
        assert_eq!(decoded.name, "addHospital");
        assert_eq!(decoded.args[0].name, "name");
        assert_eq!(decoded.args[0].value, "\"Hôpital Nord\"");
        assert_eq!(decoded.args.len(), 6);
        assert!(decode_call(Known::Records, &input).is_none());
        assert!(decode_call(Known::Registry, &input[..3]).is_none());
    }

    #[test]
    fn path_parameters_are_checked() {
        assert_eq!(parse_number("42").unwrap(), 42);
        for bad in ["", "-1", "4x", "99999999999999999999999", "0x10"] {
            assert_eq!(parse_number(bad).unwrap_err().kind, Kind::Invalid, "{bad}");
        }
        assert!(parse_hash(&format!("0x{}", "ab".repeat(32))).is_ok());
        assert!(parse_hash("0x1234").is_err());
        assert!(parse_address(&format!("0x{}", "AB".repeat(20))).is_ok());
        assert!(parse_address(&format!("0x{}", "zz".repeat(20))).is_err());
    }
}
