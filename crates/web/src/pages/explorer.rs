//! The ledger explorer (Ganache's window onto the chain, as pages): the latest blocks with a chart
//! of gas and transactions per block, a block, a transaction with its decoded contract call and
//! events, an account, and the three deployed contracts. What it shows comes from the domain's
//! explorer views (`medledger_records::explorer`), which read the chain only: exactly what
//! anyone with a JSON-RPC connection to the chain could see. This module lays the views out.

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use medledger_records::{
    Error, Kind,
    explorer::{ACCOUNT_ROWS, BlockRef, BlockSummary, Found, parse_address, parse_hash},
};
use minijinja::{Value, context, value::Serde};
use serde::Serialize;

use super::{Page, PageResult};
use crate::ApiState;

/// Blocks listed on the index page.
const LATEST: usize = 20;
/// Blocks drawn in the index page's chart.
const CHART: u64 = 50;

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/explorer", get(index))
        .route("/explorer/search", get(search))
        .route("/explorer/block/{n}", get(block))
        .route("/explorer/tx/{hash}", get(transaction))
        .route("/explorer/address/{addr}", get(address))
        .route("/explorer/contracts", get(contracts))
}

/// A serde value for a template context.
fn ser<T: Serialize>(value: &T) -> Value {
    Value::from(Serde(value))
}

// ------------------------------------------------------------------------------------ index

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

fn chart(rows: &[BlockSummary]) -> Chart {
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
    let (latest, rows) = match state.app.explorer().latest_blocks(CHART).await {
        Ok(l) => l,
        // Without the chain there is no index to show the search error on: show the error alone.
        Err(e) => return page.fail(state, search_error.unwrap_or(e)),
    };
    let chart = chart(&rows);
    let recent: Vec<&BlockSummary> = rows.iter().rev().take(LATEST).collect();
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
    let q = page.query.get("q").map_or("", |q| q.trim()).to_string();
    match state.app.explorer().search(&q).await {
        Ok(Found::Block(n)) => Redirect::to(&format!("/explorer/block/{n}")).into_response(),
        Ok(Found::Transaction(h)) => Redirect::to(&format!("/explorer/tx/{h}")).into_response(),
        Ok(Found::Account(a)) => Redirect::to(&format!("/explorer/address/{a}")).into_response(),
        Err(e) if e.kind == Kind::Unavailable => page.fail(&state, e),
        Err(e) => {
            let status = crate::error::answered(&e);
            index_page(&state, &page, status, &q, Some(e)).await
        }
    }
}

// ------------------------------------------------------------------------ block, tx, account

/// `GET /explorer/block/{n}`: a block by number, or by its `0x` hash.
async fn block(State(state): State<ApiState>, page: Page, Path(n): Path<String>) -> PageResult {
    let fail = |e| page.fail(&state, e);
    let at = BlockRef::parse(&n).map_err(fail)?;
    let b = state.app.explorer().block_view(at).await.map_err(fail)?;
    let h = &b.summary;
    Ok(page.render(
        &state,
        "explorer/block.html",
        context! {
            number => h.number,
            hash => h.hash.clone(),
            parent_hash => b.parent_hash,
            parent => b.parent,
            next => b.next,
            time => h.time,
            gas_used => h.gas_used,
            gas_limit => h.gas_limit,
            gas_percent => h.gas_used.saturating_mul(100).checked_div(h.gas_limit).unwrap_or(0),
            base_fee => b.base_fee.map(|f| f.to_string()),
            miner => b.miner,
            state_root => b.state_root,
            txs => ser(&b.transactions),
        },
    ))
}

/// `GET /explorer/tx/{hash}`: a transaction, its receipt, its decoded call and events.
async fn transaction(
    State(state): State<ApiState>,
    page: Page,
    Path(hash): Path<String>,
) -> PageResult {
    let fail = |e| page.fail(&state, e);
    let hash = parse_hash(&hash).map_err(fail)?;
    let t = state.app.explorer().tx_view(hash).await.map_err(fail)?;
    Ok(page.render(
        &state,
        "explorer/tx.html",
        context! {
            // Not `tx`: the layout reads that name for its confirmation box.
            txn => ser(&t.summary),
            index => t.index,
            nonce => t.nonce,
            gas_limit => t.gas_limit,
            tx_type => t.tx_type,
            status => ser(&t.status),
            gas_used => t.gas_used,
            gas_price => t.gas_price,
            fee => t.fee,
            created => t.summary.created,
            created_name => t.created_name,
            call => ser(&t.call),
            input_len => t.input_len,
            selector => t.selector,
            events => ser(&t.events),
        },
    ))
}

/// `GET /explorer/address/{addr}[?before=BLOCK.POSITION]`: an account's balance, nonce, code, and
/// a page of its transactions, the most recent first.
async fn address(
    State(state): State<ApiState>,
    page: Page,
    Path(addr): Path<String>,
    axum::extract::Query(q): axum::extract::Query<crate::api::Before>,
) -> PageResult {
    let fail = |e| page.fail(&state, e);
    let account = parse_address(&addr).map_err(fail)?;
    let before = q.cursor().map_err(fail)?;
    let a = state
        .app
        .explorer()
        .account_view(account, before)
        .await
        .map_err(fail)?;
    Ok(page.render(
        &state,
        "explorer/address.html",
        context! {
            address => a.address,
            balance => a.balance,
            nonce => a.nonce,
            is_contract => a.is_contract,
            code_len => a.code_len,
            contract => a.contract,
            role => a.role.map(|r| r.as_str()),
            txs => ser(&a.transactions),
            total => a.total,
            limit => ACCOUNT_ROWS,
            older => a.older,
            first => before.is_none(),
        },
    ))
}

/// `GET /explorer/contracts`: the three deployed contracts and what they hold.
async fn contracts(State(state): State<ApiState>, page: Page) -> PageResult {
    let rows = state
        .app
        .explorer()
        .contract_views()
        .await
        .map_err(|e| page.fail(&state, e))?;
    Ok(page.render(
        &state,
        "explorer/contracts.html",
        context! {
            contracts => ser(&rows),
            deployed_at => state.app.contracts().deployed_at,
        },
    ))
}
