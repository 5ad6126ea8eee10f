//! The ledger as anyone with a JSON-RPC connection sees it: blocks, transactions with their
//! decoded contract calls and events, accounts, the deployed contracts. Calls and events are
//! decoded from the committed ABI artifacts (alloy's dynamic ABI), and the contracts' enums are
//! named by the domain's own. Nothing from the app database appears here.

use alloy::{
    consensus::Transaction as _,
    dyn_abi::{DynSolValue, EventExt, JsonAbiExt},
    json_abi::{InternalType, Param},
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::{Block, Log, Transaction},
    sol_types::SolEvent,
};
use serde::Serialize;

use crate::{
    contracts::{Consent, Contracts, Known, Records, Registry, Research, method_name},
    db::Db,
    error::{Error, Kind, Result},
    index::Indexer,
    ledger::Ledger,
    model::Cursor,
    model::{Purpose, RecordKind, Role, Scope},
    store::chain_index::ChainIndex,
};

/// Transactions on one page of an account's (the most recent first).
pub const ACCOUNT_ROWS: usize = 50;

fn known_name(contracts: &Contracts, address: Option<Address>) -> Option<&'static str> {
    address
        .and_then(|a| Known::of(contracts, a))
        .map(Known::name)
}

/// A decoded call or event: its name and its arguments.
#[derive(Debug, Clone, Serialize)]
pub struct Decoded {
    pub name: String,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Arg {
    pub name: String,
    pub value: String,
    /// The value as a checksummed address, when it is one (a page links it).
    pub address: Option<String>,
}

/// The member of a contract enum, named by the domain's own enum.
fn enum_member(internal: Option<&InternalType>, value: u8) -> Option<&'static str> {
    let Some(InternalType::Enum { contract, ty }) = internal else {
        return None;
    };
    match (contract.as_deref(), ty.as_str()) {
        (Some("Records"), "Kind") => RecordKind::try_from(value).ok().map(RecordKind::as_str),
        (Some("Consent"), "Purpose") => Purpose::try_from(value).ok().map(Purpose::as_str),
        (Some("Consent"), "Scope") => Scope::try_from(value).ok().map(Scope::as_str),
        (Some("Registry"), "Role") => Role::try_from(value).ok().map(Role::as_str),
        _ => None,
    }
}

/// A value as a person reads it.
fn show(value: &DynSolValue) -> String {
    match value {
        DynSolValue::Address(a) => a.to_string(),
        DynSolValue::Bool(b) => b.to_string(),
        DynSolValue::Uint(u, _) => u.to_string(),
        DynSolValue::Int(i, _) => i.to_string(),
        DynSolValue::FixedBytes(word, size) => format!("0x{}", hex::encode(&word[..*size])),
        DynSolValue::Bytes(b) => format!("0x{}", hex::encode(b)),
        DynSolValue::String(s) => format!("{s:?}"),
        DynSolValue::Array(items) | DynSolValue::FixedArray(items) => {
            format!(
                "[{}]",
                items.iter().map(show).collect::<Vec<_>>().join(", ")
            )
        }
        DynSolValue::Tuple(items) => {
            format!(
                "({})",
                items.iter().map(show).collect::<Vec<_>>().join(", ")
            )
        }
        other => format!("{other:?}"),
    }
}

fn arg(param: &Param, value: &DynSolValue) -> Arg {
    let mut text = show(value);
    if let DynSolValue::Uint(u, _) = value
        && let Ok(small) = u8::try_from(*u)
        && let Some(member) = enum_member(param.internal_type(), small)
    {
        text = format!("{text} ({member})");
    }
    Arg {
        name: param.name.clone(),
        value: text,
        address: value.as_address().map(|a| a.to_string()),
    }
}

/// A call to one of the contracts, decoded by its ABI; `None` when the input does not decode.
pub fn decode_call(known: Known, input: &[u8]) -> Option<Decoded> {
    let selector = input.get(..4)?;
    let function = known
        .abi()
        .functions()
        .find(|f| f.selector().as_slice() == selector)?;
    let values = function.abi_decode_input(&input[4..]).ok()?;
    Some(Decoded {
        name: function.name.clone(),
        args: function
            .inputs
            .iter()
            .zip(&values)
            .map(|(p, v)| arg(p, v))
            .collect(),
    })
}

/// A log of one of the contracts, decoded by its ABI.
pub fn decode_event(known: Known, log: &alloy::primitives::Log) -> Option<Decoded> {
    let topic = log.topics().first()?;
    let event = known.abi().events().find(|e| e.selector() == *topic)?;
    let decoded = event.decode_log(&log.data).ok()?;
    let (mut indexed, mut body) = (decoded.indexed.iter(), decoded.body.iter());
    let args = event
        .inputs
        .iter()
        .filter_map(|input| {
            let value = if input.indexed {
                indexed.next()
            } else {
                body.next()
            }?;
            let param = Param {
                name: input.name.clone(),
                ty: input.ty.clone(),
                internal_type: input.internal_type.clone(),
                components: input.components.clone(),
            };
            Some(arg(&param, value))
        })
        .collect();
    Some(Decoded {
        name: event.name.clone(),
        args,
    })
}

// ---------------------------------------------------------------------------------- parsing

/// `0x` and exactly `digits` hex digits (the prefix is optional, for pasted values).
fn hex_of(s: &str, digits: usize) -> Option<&str> {
    let h = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    (h.len() == digits && h.bytes().all(|b| b.is_ascii_hexdigit())).then_some(h)
}

/// Echoed input, cut short (it lands in a page).
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// A block number as a person types it: decimal digits only.
pub fn parse_number(s: &str) -> Result<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(format!(
            "“{}” is not a block number: use decimal digits, like 42",
            clip(s)
        )));
    }
    s.parse()
        .map_err(|_| Error::invalid("that block number is far beyond any chain"))
}

pub fn parse_hash(s: &str) -> Result<B256> {
    hex_of(s, 64).and_then(|h| h.parse().ok()).ok_or_else(|| {
        Error::invalid(format!(
            "“{}” is not a transaction hash: it is 0x and 64 hex digits",
            clip(s)
        ))
    })
}

pub fn parse_address(s: &str) -> Result<Address> {
    hex_of(s, 40).and_then(|h| h.parse().ok()).ok_or_else(|| {
        Error::invalid(format!(
            "“{}” is not an address: it is 0x and 40 hex digits",
            clip(s)
        ))
    })
}

/// A block as its page names it: by number, or by its `0x` hash (as other explorers link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockRef {
    Number(u64),
    Hash(B256),
}

impl BlockRef {
    pub fn parse(s: &str) -> Result<BlockRef> {
        if s.starts_with("0x") && hex_of(s, 64).is_some() {
            parse_hash(s).map(BlockRef::Hash)
        } else {
            parse_number(s).map(BlockRef::Number)
        }
    }
}

/// Where a search leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Block(u64),
    Transaction(B256),
    Account(Address),
}

// ------------------------------------------------------------------------------------ views

// The views carry hashes, addresses (checksummed) and amounts (decimal wei) as the text a page
// prints, so every page shows them alike.

#[derive(Debug, Clone, Serialize)]
pub struct BlockSummary {
    pub number: u64,
    pub hash: String,
    pub time: u64,
    pub txs: usize,
    pub gas_used: u64,
    pub gas_limit: u64,
}

fn summary(b: &Block) -> BlockSummary {
    BlockSummary {
        number: b.header.number,
        hash: b.header.hash.to_string(),
        time: b.header.timestamp,
        txs: b.transactions.len(),
        gas_used: b.header.gas_used,
        gas_limit: b.header.gas_limit,
    }
}

/// A transaction as a list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TxSummary {
    pub hash: String,
    pub block: Option<u64>,
    pub time: Option<u64>,
    pub from: String,
    pub to: Option<String>,
    pub to_name: Option<&'static str>,
    /// For a contract creation: the address it creates.
    pub created: Option<String>,
    pub method: String,
    pub value: String,
    /// On an account's page: how it concerns the account.
    pub direction: Option<Direction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Out,
    In,
    #[serde(rename = "self")]
    ToSelf,
    Create,
}

fn tx_summary(contracts: &Contracts, tx: &Transaction, time: Option<u64>) -> TxSummary {
    let from = tx.inner.signer();
    let to = tx.to();
    TxSummary {
        hash: tx.inner.hash().to_string(),
        block: tx.block_number,
        time,
        from: from.to_string(),
        to: to.map(|a| a.to_string()),
        to_name: known_name(contracts, to),
        created: to.is_none().then(|| from.create(tx.nonce()).to_string()),
        method: method_name(contracts, tx),
        value: tx.value().to_string(),
        direction: None,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BlockView {
    #[serde(flatten)]
    pub summary: BlockSummary,
    pub parent_hash: String,
    pub parent: Option<u64>,
    pub next: Option<u64>,
    pub base_fee: Option<u64>,
    pub miner: String,
    pub state_root: String,
    pub transactions: Vec<TxSummary>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TxStatus {
    Success,
    Reverted,
    Pending,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    pub index: Option<u64>,
    pub address: String,
    pub contract: Option<&'static str>,
    pub event: Option<Decoded>,
    /// An undecoded log's topics.
    pub topics: Vec<String>,
    pub data_len: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TxView {
    #[serde(flatten)]
    pub summary: TxSummary,
    pub index: Option<u64>,
    pub nonce: u64,
    pub gas_limit: u64,
    pub tx_type: u8,
    pub status: TxStatus,
    pub gas_used: Option<u64>,
    pub gas_price: Option<String>,
    pub fee: Option<String>,
    pub created_name: Option<&'static str>,
    pub call: Option<Decoded>,
    pub input_len: usize,
    pub selector: Option<String>,
    pub events: Vec<EventView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    pub address: String,
    pub balance: String,
    pub nonce: u64,
    pub is_contract: bool,
    pub code_len: usize,
    pub contract: Option<&'static str>,
    /// The Registry's role for it (public directory data).
    pub role: Option<Role>,
    /// This page of its transactions, the most recent first.
    pub transactions: Vec<TxSummary>,
    /// All its transactions on the chain.
    pub total: u64,
    /// Where the next (older) page starts, if there is one.
    pub older: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContractView {
    pub name: &'static str,
    pub address: String,
    pub about: &'static str,
    pub code_len: usize,
    pub counts: Vec<(&'static str, String)>,
}

/// A node that did not answer: the detail goes to the log, the reader gets a sentence.
fn unavailable(e: impl std::fmt::Display) -> Error {
    tracing::warn!("explorer: the ledger did not answer: {e}");
    Error::new(
        Kind::Unavailable,
        "the ledger did not answer; try again in a moment",
    )
}

/// The explorer, a use case of its own: the public ledger read through the node, the chain
/// index (an account's transactions, the contracts' event counts), and nothing of anyone's data.
#[derive(Clone)]
pub struct Explorer {
    db: Db,
    ledger: Ledger,
    contracts: Contracts,
    indexer: Indexer,
}

impl Explorer {
    pub(crate) fn new(db: Db, ledger: Ledger, contracts: Contracts, indexer: Indexer) -> Explorer {
        Explorer {
            db,
            ledger,
            contracts,
            indexer,
        }
    }

    fn chain(&self) -> &alloy::providers::DynProvider {
        self.ledger.provider()
    }

    /// The on-chain role of `account`, as the Registry says.
    async fn role_on_chain(&self, account: Address) -> Result<Role> {
        let role = self
            .registry()
            .roleOf(account)
            .call()
            .await
            .map_err(|e| self.ledger.call_error(e))?;
        Role::try_from(role).map_err(|v| Error::internal("roleOf", format!("unknown role {v}")))
    }

    fn registry(&self) -> Registry::RegistryInstance<alloy::providers::DynProvider> {
        Registry::new(self.contracts.registry, self.chain().clone())
    }

    fn consent(&self) -> Consent::ConsentInstance<alloy::providers::DynProvider> {
        Consent::new(self.contracts.consent, self.chain().clone())
    }

    fn research(&self) -> Research::ResearchInstance<alloy::providers::DynProvider> {
        Research::new(self.contracts.research, self.chain().clone())
    }

    /// The latest block's number, and the last `count` blocks, oldest first.
    pub async fn latest_blocks(&self, count: u64) -> Result<(u64, Vec<BlockSummary>)> {
        let latest = self.ledger.block_number().await?;
        let numbers: Vec<u64> = (latest.saturating_sub(count.max(1) - 1)..=latest).collect();
        let blocks = self.ledger.blocks(&numbers, false).await?;
        Ok((latest, blocks.iter().map(summary).collect()))
    }

    pub async fn block_view(&self, at: BlockRef) -> Result<BlockView> {
        let p = self.chain();
        let found = match at {
            BlockRef::Hash(hash) => p.get_block_by_hash(hash).full().await,
            BlockRef::Number(n) => p.get_block_by_number(n.into()).full().await,
        };
        let b = found
            .map_err(unavailable)?
            .ok_or_else(|| Error::not_found("there is no such block on this chain"))?;
        let latest = self.ledger.block_number().await?;
        let contracts = self.contracts;
        let h = &b.header;
        Ok(BlockView {
            summary: summary(&b),
            parent_hash: h.parent_hash.to_string(),
            parent: h.number.checked_sub(1),
            next: (h.number < latest).then_some(h.number + 1),
            base_fee: h.base_fee_per_gas,
            miner: h.beneficiary.to_string(),
            state_root: h.state_root.to_string(),
            transactions: b
                .transactions
                .txns()
                .map(|tx| tx_summary(&contracts, tx, Some(h.timestamp)))
                .collect(),
        })
    }

    pub async fn tx_view(&self, hash: B256) -> Result<TxView> {
        let p = self.chain();
        let tx = p
            .get_transaction_by_hash(hash)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| Error::not_found("there is no such transaction on this chain"))?;
        let receipt = p.get_transaction_receipt(hash).await.map_err(unavailable)?;
        let time = match tx.block_number {
            Some(n) => Some(self.ledger.block_time(n).await?),
            None => None,
        };
        let contracts = self.contracts;
        let input = tx.input();
        let call = tx
            .to()
            .and_then(|a| Known::of(&contracts, a))
            .and_then(|k| decode_call(k, input));
        let created = receipt
            .as_ref()
            .and_then(|r| r.contract_address)
            .or_else(|| {
                tx.to()
                    .is_none()
                    .then(|| tx.inner.signer().create(tx.nonce()))
            });
        let events = receipt
            .as_ref()
            .map(|r| {
                r.inner
                    .logs()
                    .iter()
                    .map(|log| event_view(&contracts, log))
                    .collect()
            })
            .unwrap_or_default();
        let (status, gas_used, gas_price, fee) = match &receipt {
            Some(r) => {
                let price = U256::from(r.effective_gas_price);
                (
                    if r.status() {
                        TxStatus::Success
                    } else {
                        TxStatus::Reverted
                    },
                    Some(r.gas_used),
                    Some(price.to_string()),
                    Some((price * U256::from(r.gas_used)).to_string()),
                )
            }
            None => (TxStatus::Pending, None, None, None),
        };
        let mut summary = tx_summary(&contracts, &tx, time);
        summary.created = created.map(|a| a.to_string());
        Ok(TxView {
            summary,
            index: tx.transaction_index,
            nonce: tx.nonce(),
            gas_limit: tx.gas_limit(),
            tx_type: alloy::eips::Typed2718::ty(&tx.inner),
            status,
            gas_used,
            gas_price,
            fee,
            created_name: known_name(&contracts, created),
            call,
            input_len: input.len(),
            selector: input.get(..4).map(|s| format!("0x{}", hex::encode(s))),
            events,
        })
    }

    /// An account: balance, nonce, code, role, and a page of its transactions, the most recent
    /// first (older than `before`), from the chain index.
    pub async fn account_view(
        &self,
        account: Address,
        before: Option<Cursor>,
    ) -> Result<AccountView> {
        let p = self.chain();
        let contracts = self.contracts;
        let (balance, nonce, code, _) = tokio::try_join!(
            async { p.get_balance(account).await.map_err(unavailable) },
            async { p.get_transaction_count(account).await.map_err(unavailable) },
            async { p.get_code_at(account).await.map_err(unavailable) },
            self.indexer.index_chain(),
        )?;
        // A contract or odd account the Registry cannot answer for has no role to show.
        let role = match self.role_on_chain(account).await {
            Ok(Role::None) | Err(_) => None,
            Ok(role) => Some(role),
        };
        let before = before.unwrap_or_else(Cursor::start);
        let table = ChainIndex(&self.db);
        let rows = table.account_txs(account, before, ACCOUNT_ROWS + 1).await?;
        let total = table.account_total(account).await?;
        let mut transactions = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in rows.iter().take(ACCOUNT_ROWS) {
            last = Some(Cursor {
                block: row.block,
                position: row.position,
            });
            let direction = match row.direction.as_str() {
                "out" => Direction::Out,
                "in" => Direction::In,
                "self" => Direction::ToSelf,
                _ => Direction::Create,
            };
            transactions.push(TxSummary {
                hash: row.hash.clone(),
                block: Some(row.block),
                time: Some(row.time),
                from: row.sender.clone(),
                to_name: row
                    .recipient
                    .as_deref()
                    .and_then(|a| a.parse().ok())
                    .and_then(|a| Known::of(&contracts, a))
                    .map(Known::name),
                to: row.recipient.clone(),
                created: row.created.clone(),
                method: row.method.clone(),
                value: row.value.clone(),
                direction: Some(direction),
            });
        }
        Ok(AccountView {
            address: account.to_string(),
            balance: balance.to_string(),
            nonce,
            is_contract: !code.is_empty(),
            code_len: code.len(),
            contract: Known::of(&contracts, account).map(Known::name),
            role,
            transactions,
            total,
            older: last
                .filter(|_| rows.len() > ACCOUNT_ROWS)
                .map(|c| c.to_string()),
        })
    }

    /// The three deployed contracts and what they hold.
    pub async fn contract_views(&self) -> Result<Vec<ContractView>> {
        let p = self.chain();
        let c = self.contracts;
        let read = |e: alloy::contract::Error| unavailable(e);
        let registry = self.registry();
        let consent = self.consent();
        let (hospitals, doctors, patients, admins, grants, window) = tokio::try_join!(
            async { registry.hospitalCount().call().await.map_err(read) },
            async { registry.doctorCount().call().await.map_err(read) },
            async { registry.patientCount().call().await.map_err(read) },
            async { registry.adminCount().call().await.map_err(read) },
            async { consent.grantCount().call().await.map_err(read) },
            async { consent.emergencyWindow().call().await.map_err(read) },
        )?;
        // Records keeps no global count; its events do, counted by the index.
        self.indexer.index_chain().await?;
        let count_events =
            |address: Address, topic: B256| self.indexer.indexed_count(address, topic);
        let (anchored, opened, viewed, emergencies) = tokio::try_join!(
            count_events(c.records, Records::RecordAnchored::SIGNATURE_HASH),
            count_events(c.consent, Consent::AccessLogged::SIGNATURE_HASH),
            count_events(c.consent, Consent::RecordViewed::SIGNATURE_HASH),
            count_events(c.consent, Consent::EmergencyDeclared::SIGNATURE_HASH),
        )?;
        let (code_registry, code_records, code_consent, code_research) = tokio::try_join!(
            async { p.get_code_at(c.registry).await.map_err(unavailable) },
            async { p.get_code_at(c.records).await.map_err(unavailable) },
            async { p.get_code_at(c.consent).await.map_err(unavailable) },
            async { p.get_code_at(c.research).await.map_err(unavailable) },
        )?;
        let research = self.research();
        let (studies, exports) = tokio::try_join!(
            async { research.studyCount().call().await.map_err(read) },
            async { research.exportCount().call().await.map_err(read) },
        )?;
        Ok(vec![
            ContractView {
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
            ContractView {
                name: "Records",
                address: c.records.to_string(),
                about: "record anchors: a random id, the kind, and the hash of the encrypted body",
                code_len: code_records.len(),
                counts: vec![("records anchored", anchored.to_string())],
            },
            ContractView {
                name: "Consent",
                address: c.consent.to_string(),
                about: "grants, emergencies (break-glass) and the log of every opening and view of a record",
                code_len: code_consent.len(),
                counts: vec![
                    ("grants", grants.to_string()),
                    ("openings logged", opened.to_string()),
                    ("views logged", viewed.to_string()),
                    ("emergencies declared", emergencies.to_string()),
                    ("emergency window (hours)", (window / 3600).to_string()),
                ],
            },
            ContractView {
                name: "Research",
                address: c.research.to_string(),
                about: "studies (the hash of their details), patients' opt-ins and withdrawals, and the exports made for them",
                code_len: code_research.len(),
                counts: vec![
                    ("studies", studies.to_string()),
                    ("exports", exports.to_string()),
                ],
            },
        ])
    }

    /// Where a search for `q` leads: a block number, a transaction (or block) hash, or an
    /// address.
    pub async fn search(&self, q: &str) -> Result<Found> {
        let q = q.trim();
        if q.is_empty() {
            return Err(Error::invalid(
                "type a block number, a transaction hash or an address to search for",
            ));
        }
        if q.bytes().all(|b| b.is_ascii_digit()) {
            return parse_number(q).map(Found::Block);
        }
        if hex_of(q, 40).is_some() {
            return parse_address(q).map(Found::Account);
        }
        if hex_of(q, 64).is_some() {
            let hash = parse_hash(q)?;
            let p = self.chain();
            if p.get_transaction_by_hash(hash)
                .await
                .map_err(unavailable)?
                .is_some()
            {
                return Ok(Found::Transaction(hash));
            }
            if let Some(b) = p.get_block_by_hash(hash).await.map_err(unavailable)? {
                return Ok(Found::Block(b.header.number));
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

    /// What a mined transaction cost and whether it succeeded (the confirmation a page shows
    /// after a write), if it is mined.
    pub async fn transaction_info(&self, hash: B256) -> Result<Option<(crate::TxInfo, bool)>> {
        Ok(self
            .ledger
            .receipt(hash)
            .await?
            .map(|r| (crate::TxInfo::of(&r), r.status())))
    }
}

fn event_view(contracts: &Contracts, log: &Log) -> EventView {
    let known = Known::of(contracts, log.address());
    let event = known.and_then(|k| decode_event(k, &log.inner));
    EventView {
        index: log.log_index,
        address: log.address().to_string(),
        contract: known.map(Known::name),
        topics: match event {
            None => log.topics().iter().map(|t| t.to_string()).collect(),
            Some(_) => Vec::new(),
        },
        event,
        data_len: log.data().data.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contracts::Registry;
    use alloy::sol_types::SolCall;

    #[test]
    fn the_contracts_calls_decode_by_their_abi() {
        let call = Registry::addHospitalCall {
            name: "Hôpital \"Nord\"".into(),
            city: "Lyon".into(),
            addr: String::new(),
            specialties: "cardiology".into(),
            services: String::new(),
            contact: String::new(),
        };
        let input = call.abi_encode();
        let decoded = decode_call(Known::Registry, &input).unwrap();
        assert_eq!(decoded.name, "addHospital");
        let pairs: Vec<(&str, &str)> = decoded
            .args
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_str()))
            .collect();
        assert_eq!(pairs[0], ("name", r#""Hôpital \"Nord\"""#));
        assert_eq!(pairs[1], ("city", r#""Lyon""#));
        assert_eq!(decoded.args.len(), 6);
        assert!(decode_call(Known::Records, &input).is_none());
        assert!(decode_call(Known::Registry, &input[..3]).is_none());
        // Enums are named by the domain's own, addresses are checksummed and linked.
        let grant = Consent::grantDoctorCall {
            doctor: "0x9222c6b72daa0be0e941a431989ae14882b897c2"
                .parse()
                .unwrap(),
            scope: 1,
            kindsMask: 1,
            recordIds: vec![B256::repeat_byte(7)],
            purpose: 1,
            expiresAt: 99,
        };
        let decoded = decode_call(Known::Consent, &grant.abi_encode()).unwrap();
        let value = |name: &str| {
            decoded
                .args
                .iter()
                .find(|a| a.name == name)
                .unwrap()
                .clone()
        };
        assert_eq!(value("scope").value, "1 (kinds)");
        assert_eq!(value("purpose").value, "1 (research)");
        assert_eq!(
            value("doctor").address.as_deref(),
            Some("0x9222C6b72dAA0be0E941a431989AE14882B897C2")
        );
        assert_eq!(
            value("recordIds").value,
            format!("[{}]", B256::repeat_byte(7))
        );
    }

    #[test]
    fn events_decode_with_their_indexed_arguments_in_place() {
        let event = Records::RecordAnchored {
            id: B256::repeat_byte(1),
            patient: Address::repeat_byte(2),
            author: Address::repeat_byte(3),
            kind: 1,
            contentHash: B256::repeat_byte(4),
        };
        let log = alloy::primitives::Log {
            address: Address::ZERO,
            data: event.encode_log_data(),
        };
        let decoded = decode_event(Known::Records, &log).unwrap();
        assert_eq!(decoded.name, "RecordAnchored");
        let names: Vec<&str> = decoded.args.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["id", "patient", "author", "kind", "contentHash"]);
        assert_eq!(decoded.args[3].value, "1 (prescription)");
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
        assert!(matches!(
            BlockRef::parse(&format!("0x{}", "ab".repeat(32))),
            Ok(BlockRef::Hash(_))
        ));
        assert_eq!(BlockRef::parse("7").unwrap(), BlockRef::Number(7));
    }
}
