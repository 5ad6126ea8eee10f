//! `verify`: re-checks a stored chain from genesis — frames, parent links, signatures, and a full
//! re-execution compared field by field with the stored receipts and headers — and names the
//! first block that does not match.

use std::path::Path;

use alloy::consensus::transaction::SignerRecoverable;

use crate::{
    Error, Result, SealedBlock,
    node::reexecute,
    state::State,
    store::{self},
};

/// What `verify_data_dir` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Blocks (after genesis) that passed every check.
    pub blocks_ok: u64,
    pub transactions_ok: u64,
    /// The first problem, naming its block; `None` when the whole chain checks out.
    pub problem: Option<String>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// Verifies the chain stored in `dir` (read-only: nothing is repaired or truncated).
pub fn verify_data_dir(dir: &Path) -> Result<VerifyReport> {
    let genesis = store::read_genesis(dir)?.ok_or_else(|| {
        Error::InvalidInput(format!(
            "{} holds no chain (no genesis file)",
            dir.display()
        ))
    })?;
    let scan = store::scan(&store::log_path(dir))?;
    let mut report = VerifyReport {
        blocks_ok: 0,
        transactions_ok: 0,
        problem: None,
    };
    let mut state = State::from_alloc(&genesis.alloc);
    let mut parent = genesis.header(state.root());
    state.push_block_hash(parent.hash_slow());
    for block in &scan.blocks {
        if let Err(problem) = check_block(&mut state, genesis.chain_id, &parent, block) {
            report.problem = Some(format!("block {}: {problem}", block.number()));
            return Ok(report);
        }
        report.blocks_ok += 1;
        report.transactions_ok += block.transactions.len() as u64;
        parent = block.header.clone();
    }
    if let Some((frame, _, _)) = scan.damaged {
        report.problem = Some(format!("block {}: {}", frame.block, frame.reason));
    }
    Ok(report)
}

fn check_block(
    state: &mut State,
    chain_id: u64,
    parent: &alloy::consensus::Header,
    block: &SealedBlock,
) -> std::result::Result<(), String> {
    let header = &block.header;
    if header.number != parent.number + 1 {
        return Err(format!("number follows block {}", parent.number));
    }
    if header.parent_hash != parent.hash_slow() {
        return Err("parent hash does not match the previous block".into());
    }
    if header.timestamp < parent.timestamp {
        return Err("timestamp is before the parent's".into());
    }
    if block.senders.len() != block.transactions.len()
        || block.receipts.len() != block.transactions.len()
    {
        return Err("transactions, senders and receipts differ in number".into());
    }
    for (index, (tx, sender)) in block.transactions.iter().zip(&block.senders).enumerate() {
        match tx.recover_signer() {
            Ok(signer) if signer == *sender => {}
            Ok(signer) => {
                return Err(format!(
                    "transaction {index} is signed by {signer}, stored as {sender}"
                ));
            }
            Err(e) => return Err(format!("transaction {index} has an invalid signature: {e}")),
        }
    }
    let redone = reexecute(state, chain_id, header.parent_hash, block);
    state.push_block_hash(redone.hash());
    if redone.transactions.len() != block.transactions.len() {
        return Err("a stored transaction is not valid on re-execution".into());
    }
    for (index, (stored, fresh)) in block.receipts.iter().zip(&redone.receipts).enumerate() {
        if stored != fresh {
            let what = if stored.status() != fresh.status() {
                "status"
            } else if stored.cumulative_gas_used() != fresh.cumulative_gas_used() {
                "gas used"
            } else {
                "logs"
            };
            return Err(format!(
                "receipt {index} differs from re-execution ({what})"
            ));
        }
    }
    let fields = [
        (
            "transactions root",
            header.transactions_root != redone.header.transactions_root,
        ),
        (
            "receipts root",
            header.receipts_root != redone.header.receipts_root,
        ),
        ("state root", header.state_root != redone.header.state_root),
        ("gas used", header.gas_used != redone.header.gas_used),
        ("logs bloom", header.logs_bloom != redone.header.logs_bloom),
    ];
    if let Some((name, _)) = fields.iter().find(|(_, differs)| *differs) {
        return Err(format!("{name} differs from re-execution"));
    }
    if *header != redone.header {
        return Err("header differs from re-execution".into());
    }
    Ok(())
}
