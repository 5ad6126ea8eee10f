//! The chain index's tables (`chain_blocks`, `chain_account_txs`, `chain_account_counts`,
//! `chain_events`, `chain_event_counts`): the blocks, each account's transactions and the
//! contracts' events, copied from the chain by `index.rs`, and read a page at a time.

use alloy::{
    consensus::Transaction as _,
    primitives::{Address, B256, Bytes, LogData},
    rpc::types::{Block, Log},
};
use sqlx::{AssertSqlSafe, Row};

use crate::{
    db::{Db, DbRow},
    error::{Error, Result},
    model::Cursor,
};

/// Rows in one INSERT.
const ROWS_PER_INSERT: usize = 500;

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

/// A transaction as an account's listing holds it.
pub(crate) struct AccountTx {
    pub(crate) hash: String,
    pub(crate) block: u64,
    pub(crate) position: u64,
    pub(crate) time: u64,
    pub(crate) sender: String,
    pub(crate) recipient: Option<String>,
    pub(crate) created: Option<String>,
    pub(crate) method: String,
    pub(crate) value: String,
    /// `out`, `in`, `self` or `create`.
    pub(crate) direction: String,
}

#[derive(Clone, Copy)]
pub(crate) struct ChainIndex<'a>(pub(crate) &'a Db);

impl ChainIndex<'_> {
    /// The highest block indexed: its number and hash.
    pub(crate) async fn top(self) -> Result<Option<(u64, B256)>> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT number, hash FROM chain_blocks ORDER BY number DESC LIMIT 1")
                .fetch_optional(self.0)
                .await?;
        row.map(|(n, h)| {
            let hash = h
                .parse()
                .map_err(|e| Error::internal("chain index", format!("block hash: {e}")))?;
            Ok((n as u64, hash))
        })
        .transpose()
    }

    /// The hash of indexed block `number`.
    pub(crate) async fn hash_at(self, number: u64) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT hash FROM chain_blocks WHERE number = $1")
                .bind(number as i64)
                .fetch_optional(self.0)
                .await?,
        )
    }

    /// Drops everything above block `above` (-1: everything), and counts again what is left.
    pub(crate) async fn drop_above(self, above: i64) -> Result<()> {
        let mut tx = self.0.begin().await?;
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
        Ok(())
    }

    /// Stores `blocks`, their transactions (under each account they concern) and `logs`, with
    /// the counts they add to, in one database transaction.
    /// `method_of` names each transaction's method for the account listings.
    pub(crate) async fn store_blocks(
        self,
        blocks: &[Block],
        logs: &[Log],
        method_of: impl Fn(&alloy::rpc::types::Transaction) -> String,
    ) -> Result<()> {
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
                let method = method_of(t);
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

        let mut db = self.0.begin().await?;
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
    pub(crate) async fn events(self, query: Events<'_>) -> Result<Vec<Log>> {
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
        let rows = q.query().fetch_all(self.0).await?;
        rows.iter().map(indexed_log).collect()
    }

    /// How many logs of `topic0` the contract at `address` has emitted.
    pub(crate) async fn count(self, address: Address, topic0: B256) -> Result<u64> {
        let n: Option<i64> = sqlx::query_scalar(
            "SELECT count FROM chain_event_counts WHERE address = $1 AND topic0 = $2",
        )
        .bind(key(address.as_slice()))
        .bind(key(topic0.as_slice()))
        .fetch_optional(self.0)
        .await?;
        Ok(n.unwrap_or(0) as u64)
    }

    /// A page of `account`'s transactions older than `before`, newest first (at most `limit`).
    pub(crate) async fn account_txs(
        self,
        account: Address,
        before: Cursor,
        limit: usize,
    ) -> Result<Vec<AccountTx>> {
        let rows = sqlx::query(
            "SELECT hash, block, position, time, sender, recipient, created, method, value, direction \
             FROM chain_account_txs \
             WHERE account = $1 AND (block < $2 OR (block = $2 AND position < $3)) \
             ORDER BY block DESC, position DESC LIMIT $4",
        )
        .bind(key(account.as_slice()))
        .bind(before.block as i64)
        .bind(before.position as i64)
        .bind(limit as i64)
        .fetch_all(self.0)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AccountTx {
                    hash: row.try_get("hash")?,
                    block: row.try_get::<i64, _>("block")? as u64,
                    position: row.try_get::<i64, _>("position")? as u64,
                    time: row.try_get::<i64, _>("time")? as u64,
                    sender: row.try_get("sender")?,
                    recipient: row.try_get("recipient")?,
                    created: row.try_get("created")?,
                    method: row.try_get("method")?,
                    value: row.try_get("value")?,
                    direction: row.try_get("direction")?,
                })
            })
            .collect()
    }

    /// How many transactions concern `account`.
    pub(crate) async fn account_total(self, account: Address) -> Result<u64> {
        let total: Option<i64> =
            sqlx::query_scalar("SELECT txs FROM chain_account_counts WHERE account = $1")
                .bind(key(account.as_slice()))
                .fetch_optional(self.0)
                .await?;
        Ok(total.unwrap_or(0) as u64)
    }
}
