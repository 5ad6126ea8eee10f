//! The chain index: blocks, each account's transactions and the three contracts' events, copied
//! from the chain into the app database as it grows, so that the access log, an account's
//! transactions and the contracts' counts are read a page at a time, at a cost that does not grow
//! with the chain.
//!
//! The chain stays the truth. Every read first brings the index up to the chain's head (one
//! request to the node when nothing is new); a block whose parent is not the block indexed below
//! it, or a head the index holds under another hash, makes the index drop what the chain no longer
//! holds and copy it again. Several app servers share one index and take turns writing it.

use alloy::{
    consensus::Transaction as _,
    eips::BlockNumberOrTag,
    primitives::{Address, B256, Bytes, LogData},
    providers::Provider,
    rpc::types::{Block, Filter, Log},
};
use sqlx::{AssertSqlSafe, Row};

use crate::{
    app::App,
    db::DbRow,
    error::{Error, Result},
};

/// Blocks copied in one database transaction.
const BATCH_BLOCKS: u64 = 200;
/// Rows in one INSERT.
const ROWS_PER_INSERT: usize = 500;

/// Where a listing, newest first, goes on: just older than this block and position (a
/// transaction's index in its block, or a log's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub block: u64,
    pub position: u64,
}

impl Cursor {
    /// `BLOCK.POSITION`, as a page's `before=` carries it.
    pub fn parse(s: &str) -> Result<Cursor> {
        let bad = || Error::invalid("“before” is a block and a position, like 120.3").on("before");
        let (block, position) = s.split_once('.').ok_or_else(bad)?;
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
                .filter(|n| *n <= i64::MAX as u64)
                .ok_or_else(bad)
        };
        Ok(Cursor {
            block: number(block)?,
            position: number(position)?,
        })
    }

    /// Past everything: the first page.
    pub(crate) fn start() -> Cursor {
        Cursor {
            block: i64::MAX as u64,
            position: 0,
        }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.block, self.position)
    }
}

/// A value bound to a statement.
enum Param {
    Int(i64),
    Text(String),
    Maybe(Option<String>),
}

/// A statement put together from pieces, its values bound as `$1`, `$2`, … (sqlx's query
/// builder writes `?` under the `Any` driver, which PostgreSQL does not take).
struct Sql {
    text: String,
    params: Vec<Param>,
}

impl Sql {
    fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            params: Vec::new(),
        }
    }

    /// SQL text: only ever a literal of this module, never input.
    fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    fn bind(&mut self, value: Param) -> &mut Sql {
        self.params.push(value);
        self.text.push_str(&format!("${}", self.params.len()));
        self
    }

    fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
        let mut q = sqlx::query(AssertSqlSafe(self.text.clone()));
        for p in &self.params {
            q = match p {
                Param::Int(n) => q.bind(*n),
                Param::Text(t) => q.bind(t.as_str()),
                Param::Maybe(t) => q.bind(t.as_deref()),
            };
        }
        q
    }
}

/// Inserts `rows` into `table (columns)`, `ROWS_PER_INSERT` to a statement.
async fn insert(
    db: &mut sqlx::Transaction<'static, sqlx::Any>,
    table: &str,
    rows: Vec<Vec<Param>>,
) -> Result<()> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut q = Sql::new(&format!("INSERT INTO {table} VALUES "));
        for (i, row) in rows.by_ref().take(ROWS_PER_INSERT).enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            for (j, value) in row.into_iter().enumerate() {
                if j > 0 {
                    q.push(", ");
                }
                q.bind(value);
            }
            q.push(")");
        }
        q.query().execute(&mut **db).await?;
    }
    Ok(())
}

/// What copying a run of blocks came to.
#[derive(Clone, Copy)]
enum Copied {
    Stored,
    /// The first block does not follow the indexed block below it: the chain was reorganised.
    Diverged,
    /// The blocks or logs fetched do not follow each other: the chain moved while they were
    /// fetched.
    Moved,
}

/// Which of the contracts' logs to read from the index.
pub(crate) struct Events<'a> {
    /// Of any of these contracts.
    pub addresses: Vec<Address>,
    /// Any of these events.
    pub topics0: &'a [B256],
    /// Only those whose topic 1 or 2 is this word.
    pub topic: Option<(usize, B256)>,
    /// From this block on.
    pub since: u64,
    /// Older than this; `None`: from the newest.
    pub before: Option<Cursor>,
    pub limit: Option<usize>,
}

/// A log as the index holds it: what `eth_getLogs` returned, with its block's time.
pub(crate) fn indexed_log(row: &DbRow) -> Result<Log> {
    let text = |name: &str| row.try_get::<String, _>(name);
    let hex = |s: &str, what: &str| {
        s.parse::<B256>()
            .map_err(|e| Error::internal("chain index", format!("{what}: {e}")))
    };
    let mut topics = vec![hex(&text("topic0")?, "topic0")?];
    for name in ["topic1", "topic2", "topic3"] {
        if let Some(t) = row.try_get::<Option<String>, _>(name)? {
            topics.push(hex(&t, name)?);
        }
    }
    let data: Bytes = text("data")?
        .parse()
        .map_err(|e| Error::internal("chain index", format!("data: {e}")))?;
    let address: Address = text("address")?
        .parse()
        .map_err(|e| Error::internal("chain index", format!("address: {e}")))?;
    Ok(Log {
        inner: alloy::primitives::Log {
            address,
            data: LogData::new_unchecked(topics, data),
        },
        block_hash: None,
        block_number: Some(row.try_get::<i64, _>("block")? as u64),
        block_timestamp: Some(row.try_get::<i64, _>("time")? as u64),
        transaction_hash: Some(hex(&text("tx_hash")?, "tx_hash")?),
        transaction_index: None,
        log_index: Some(row.try_get::<i64, _>("log_index")? as u64),
        removed: false,
    })
}

/// How a topic or an address is kept: lowercase hex.
pub(crate) fn key(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

impl App {
    /// Brings the index up to the chain's head; returns the head indexed.
    pub async fn index_chain(&self) -> Result<u64> {
        let head = self.head().await?;
        if self.indexed_head() == Some(head) {
            return Ok(head.0);
        }
        let _turn = self.index_turn().await;
        let _held = self.hold("chain index").await?;
        // Turns without a block stored: the chain moved while it was read, or went back.
        let mut unsettled = 0;
        loop {
            let head = self.head().await?;
            let top = self.indexed_top().await?;
            let copied = match top {
                Some(top) if top == head => {
                    self.set_indexed_head(Some(head));
                    return Ok(head.0);
                }
                // The chain is shorter than the index, or holds another block at its head.
                Some(top) if top.0 >= head.0 => {
                    self.rewind(head.0).await?;
                    Copied::Moved
                }
                Some(top) => {
                    self.copy_blocks(top.0 + 1, head.0.min(top.0 + BATCH_BLOCKS))
                        .await?
                }
                None => self.copy_blocks(0, head.0.min(BATCH_BLOCKS - 1)).await?,
            };
            match copied {
                Copied::Stored => unsettled = 0,
                Copied::Diverged | Copied::Moved => {
                    if let (Copied::Diverged, Some(top)) = (copied, top) {
                        self.rewind(top.0).await?;
                    }
                    unsettled += 1;
                    if unsettled > 10 {
                        return Err(Error::new(
                            crate::error::Kind::Unavailable,
                            "the chain keeps changing while it is read; try again in a moment",
                        ));
                    }
                }
            }
        }
    }

    /// The chain's latest block: its number and hash.
    async fn head(&self) -> Result<(u64, B256)> {
        let block = self
            .ledger()
            .provider()
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| self.ledger().unavailable(e))?
            .ok_or_else(|| Error::internal("chain index", "the node has no latest block"))?;
        Ok((block.header.number, block.header.hash))
    }

    async fn indexed_top(&self) -> Result<Option<(u64, B256)>> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT number, hash FROM chain_blocks ORDER BY number DESC LIMIT 1")
                .fetch_optional(self.db())
                .await?;
        row.map(|(n, h)| {
            let hash = h
                .parse()
                .map_err(|e| Error::internal("chain index", format!("block hash: {e}")))?;
            Ok((n as u64, hash))
        })
        .transpose()
    }

    /// Drops what the index holds above the highest block at or below `at` that the chain still
    /// holds under the same hash.
    async fn rewind(&self, at: u64) -> Result<()> {
        let mut keep = Some(at);
        while let Some(n) = keep {
            let stored: Option<String> =
                sqlx::query_scalar("SELECT hash FROM chain_blocks WHERE number = $1")
                    .bind(n as i64)
                    .fetch_optional(self.db())
                    .await?;
            let chain = self.ledger().blocks(&[n], false).await?;
            if stored.as_deref() == chain.first().map(|b| b.header.hash.to_string()).as_deref() {
                break;
            }
            // Another chain altogether: start again rather than walk back through all of it.
            keep = if n == 0 || self.genesis_differs().await? {
                None
            } else {
                Some(n - 1)
            };
        }
        let above = keep.map_or(-1, |n| n as i64);
        tracing::warn!(
            "the chain no longer holds the indexed blocks above {above}; indexing them again"
        );
        let mut tx = self.db().begin().await?;
        for table in [
            "DELETE FROM chain_blocks WHERE number > $1",
            "DELETE FROM chain_account_txs WHERE block > $1",
            "DELETE FROM chain_events WHERE block > $1",
        ] {
            sqlx::query(table).bind(above).execute(&mut *tx).await?;
        }
        // The counts are counted again from what is left (a reorganisation is rare).
        for statement in [
            "DELETE FROM chain_account_counts",
            "INSERT INTO chain_account_counts (account, txs) SELECT account, COUNT(*) FROM chain_account_txs GROUP BY account",
            "DELETE FROM chain_event_counts",
            "INSERT INTO chain_event_counts (address, topic0, count) SELECT address, topic0, COUNT(*) FROM chain_events GROUP BY address, topic0",
        ] {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.set_indexed_head(None);
        Ok(())
    }

    async fn genesis_differs(&self) -> Result<bool> {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT hash FROM chain_blocks WHERE number = 0")
                .fetch_optional(self.db())
                .await?;
        let chain = self.ledger().blocks(&[0], false).await?;
        Ok(stored != chain.first().map(|b| b.header.hash.to_string()))
    }

    /// Copies blocks `from..=to` with their transactions and the contracts' logs, in one
    /// database transaction.
    async fn copy_blocks(&self, from: u64, to: u64) -> Result<Copied> {
        let numbers: Vec<u64> = (from..=to).collect();
        let blocks = self.ledger().blocks(&numbers, true).await?;
        let below: Option<String> = match from.checked_sub(1) {
            Some(n) => {
                sqlx::query_scalar("SELECT hash FROM chain_blocks WHERE number = $1")
                    .bind(n as i64)
                    .fetch_optional(self.db())
                    .await?
            }
            None => None,
        };
        let mut parent = below;
        for b in &blocks {
            if let Some(p) = &parent
                && *p != b.header.parent_hash.to_string()
            {
                return Ok(if b.header.number == from {
                    Copied::Diverged
                } else {
                    Copied::Moved
                });
            }
            parent = Some(b.header.hash.to_string());
        }
        let c = self.contracts();
        let filter = Filter::new()
            .address(vec![c.registry, c.records, c.consent, c.research])
            .from_block(from)
            .to_block(to);
        let logs = self.ledger().logs(&filter).await?;
        // Logs of blocks other than those fetched: the chain moved meanwhile; try again.
        let hash_of = |n: u64| blocks.get((n - from) as usize).map(|b| b.header.hash);
        if logs.iter().any(|l| {
            let n = l.block_number.unwrap_or(u64::MAX);
            !(from..=to).contains(&n) || l.block_hash.is_some_and(|h| Some(h) != hash_of(n))
        }) {
            return Ok(Copied::Moved);
        }
        self.store_blocks(&blocks, &logs).await?;
        Ok(Copied::Stored)
    }

    async fn store_blocks(&self, blocks: &[Block], logs: &[Log]) -> Result<()> {
        let contracts = self.contracts();
        let mut block_rows = Vec::new();
        let mut account_rows = Vec::new();
        let mut account_counts = std::collections::BTreeMap::<String, i64>::new();
        for b in blocks {
            let number = b.header.number as i64;
            block_rows.push(vec![
                Param::Int(number),
                Param::Text(b.header.hash.to_string()),
                Param::Int(b.header.timestamp as i64),
            ]);
            for (position, t) in b.transactions.txns().enumerate() {
                let position = position as i64;
                let hash = t.inner.hash().to_string();
                let from = t.inner.signer();
                let to = t.to();
                let created = to.is_none().then(|| from.create(t.nonce()));
                let method = crate::explorer::method_name(&contracts, t);
                let mut concerned = vec![(from, if to == Some(from) { "self" } else { "out" })];
                if let Some(to) = to.filter(|a| *a != from) {
                    concerned.push((to, "in"));
                }
                if let Some(created) = created {
                    concerned.push((created, "create"));
                }
                for (account, direction) in concerned {
                    let account = key(account.as_slice());
                    *account_counts.entry(account.clone()).or_default() += 1;
                    account_rows.push(vec![
                        Param::Text(account),
                        Param::Int(number),
                        Param::Int(position),
                        Param::Text(hash.clone()),
                        Param::Int(b.header.timestamp as i64),
                        Param::Text(from.to_string()),
                        Param::Maybe(to.map(|a| a.to_string())),
                        Param::Maybe(created.map(|a| a.to_string())),
                        Param::Text(method.clone()),
                        Param::Text(t.value().to_string()),
                        Param::Text(direction.into()),
                    ]);
                }
            }
        }
        let mut event_counts = std::collections::BTreeMap::<(String, String), i64>::new();
        let mut event_rows = Vec::new();
        for l in logs {
            let topics = l.topics();
            let Some(topic0) = topics.first() else {
                continue;
            };
            let topic = |i: usize| topics.get(i).map(|t| key(t.as_slice()));
            let address = key(l.address().as_slice());
            *event_counts
                .entry((address.clone(), key(topic0.as_slice())))
                .or_default() += 1;
            event_rows.push(vec![
                Param::Int(l.block_number.unwrap_or_default() as i64),
                Param::Int(l.log_index.unwrap_or_default() as i64),
                Param::Text(l.transaction_hash.unwrap_or_default().to_string()),
                Param::Text(address),
                Param::Text(key(topic0.as_slice())),
                Param::Maybe(topic(1)),
                Param::Maybe(topic(2)),
                Param::Maybe(topic(3)),
                Param::Text(key(&l.data().data)),
            ]);
        }

        let mut db = self.db().begin().await?;
        insert(&mut db, "chain_blocks (number, hash, time)", block_rows).await?;
        insert(
            &mut db,
            "chain_account_txs (account, block, position, hash, time, sender, recipient, created, method, value, direction)",
            account_rows,
        )
        .await?;
        for (account, n) in account_counts {
            sqlx::query(
                "INSERT INTO chain_account_counts (account, txs) VALUES ($1, $2) \
                 ON CONFLICT (account) DO UPDATE SET txs = chain_account_counts.txs + excluded.txs",
            )
            .bind(account)
            .bind(n)
            .execute(&mut *db)
            .await?;
        }
        insert(
            &mut db,
            "chain_events (block, log_index, tx_hash, address, topic0, topic1, topic2, topic3, data)",
            event_rows,
        )
        .await?;
        for ((address, topic0), n) in event_counts {
            sqlx::query(
                "INSERT INTO chain_event_counts (address, topic0, count) VALUES ($1, $2, $3) \
                 ON CONFLICT (address, topic0) DO UPDATE SET count = chain_event_counts.count + excluded.count",
            )
            .bind(address)
            .bind(topic0)
            .bind(n)
            .execute(&mut *db)
            .await?;
        }
        db.commit().await?;
        Ok(())
    }

    /// The contracts' logs that `query` asks for, newest first.
    pub(crate) async fn indexed_events(&self, query: Events<'_>) -> Result<Vec<Log>> {
        let mut q = Sql::new(
            "SELECT e.block, e.log_index, e.tx_hash, e.address, e.topic0, e.topic1, e.topic2, e.topic3, e.data, b.time \
             FROM chain_events e JOIN chain_blocks b ON b.number = e.block WHERE e.address IN (",
        );
        for (i, a) in query.addresses.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.bind(Param::Text(key(a.as_slice())));
        }
        q.push(") AND e.topic0 IN (");
        for (i, t) in query.topics0.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.bind(Param::Text(key(t.as_slice())));
        }
        q.push(")");
        match query.topic {
            Some((1, value)) => q
                .push(" AND e.topic1 = ")
                .bind(Param::Text(key(value.as_slice()))),
            Some((2, value)) => q
                .push(" AND e.topic2 = ")
                .bind(Param::Text(key(value.as_slice()))),
            Some((i, _)) => {
                return Err(Error::internal(
                    "chain index",
                    format!("topic{i} is not indexed"),
                ));
            }
            None => &mut q,
        };
        let before = query.before.unwrap_or_else(Cursor::start);
        q.push(" AND e.block >= ")
            .bind(Param::Int(query.since as i64));
        q.push(" AND (e.block < ")
            .bind(Param::Int(before.block as i64));
        q.push(" OR (e.block = ")
            .bind(Param::Int(before.block as i64));
        q.push(" AND e.log_index < ")
            .bind(Param::Int(before.position as i64));
        q.push(")) ORDER BY e.block DESC, e.log_index DESC");
        if let Some(limit) = query.limit {
            q.push(" LIMIT ").bind(Param::Int(limit as i64));
        }
        let rows = q.query().fetch_all(self.db()).await?;
        rows.iter().map(indexed_log).collect()
    }

    /// How many logs of `topic0` the contract at `address` has emitted.
    pub(crate) async fn indexed_count(&self, address: Address, topic0: B256) -> Result<u64> {
        let n: Option<i64> = sqlx::query_scalar(
            "SELECT count FROM chain_event_counts WHERE address = $1 AND topic0 = $2",
        )
        .bind(key(address.as_slice()))
        .bind(key(topic0.as_slice()))
        .fetch_optional(self.db())
        .await?;
        Ok(n.unwrap_or(0) as u64)
    }

    /// Brings the index up to the chain every `every`, so a request seldom waits for it. Runs
    /// until dropped.
    pub async fn index_forever(self, every: std::time::Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.index_chain().await {
                tracing::warn!("indexing the chain: {}", e.for_operator());
            }
        }
    }
}
