//! Executes transactions with revm: sealing a block from pending transactions, and read-only
//! calls (`eth_call`, `eth_estimateGas`) against a state.

use alloy::{
    consensus::{
        Header, Receipt, ReceiptEnvelope, ReceiptWithBloom, Transaction, TxEnvelope,
        proofs::{calculate_receipt_root, calculate_transaction_root},
    },
    eips::{
        Typed2718,
        eip1559::{BaseFeeParams, calc_next_block_base_fee},
        eip2930::AccessList,
    },
    primitives::{Address, B256, Bloom, Bytes, Log, TxKind, U256, keccak256},
};
use revm::{
    Context, Database, DatabaseCommit, DatabaseRef, ExecuteCommitEvm, ExecuteEvm, MainBuilder,
    MainContext,
    context::{BlockEnv, TxEnv, result::ExecutionResult},
    context_interface::result::{EVMError, InvalidTransaction},
    database_interface::WrapDatabaseRef,
    primitives::{eip4844::BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE, hardfork::SpecId},
    state::{AccountInfo, EvmState},
};

use crate::{
    Error, Result, SealedBlock, TxError,
    state::{State, StateAt},
};

/// The execution rules this node runs: the current Ethereum hard fork.
pub(crate) const SPEC: SpecId = SpecId::OSAKA;
/// EIP-7825 (Osaka) caps a single transaction's gas.
pub(crate) const TX_GAS_CAP: u64 = 1 << 24;

/// A transaction waiting to be mined, with its sender already recovered.
#[derive(Debug, Clone)]
pub(crate) struct PendingTx {
    pub(crate) tx: TxEnvelope,
    pub(crate) sender: Address,
    pub(crate) hash: B256,
}

/// A read-only call (`eth_call`, `eth_estimateGas`).
#[derive(Debug, Clone, Default)]
pub struct CallRequest {
    pub from: Option<Address>,
    pub to: Option<Address>,
    pub gas: Option<u64>,
    pub gas_price: Option<u128>,
    pub max_fee_per_gas: Option<u128>,
    pub max_priority_fee_per_gas: Option<u128>,
    pub value: Option<U256>,
    pub input: Option<Bytes>,
    pub nonce: Option<u64>,
    pub access_list: Option<AccessList>,
    /// The EIP-2718 type asked for; inferred from the fee fields and access list when absent.
    pub tx_type: Option<u8>,
}

/// What a successful call returned.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    pub output: Bytes,
    pub gas_used: u64,
    pub logs: Vec<Log>,
}

/// The environment of the block being built or called against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockContext {
    pub(crate) number: u64,
    pub(crate) timestamp: u64,
    pub(crate) gas_limit: u64,
    pub(crate) base_fee: u64,
    pub(crate) prevrandao: B256,
}

impl BlockContext {
    fn env(&self) -> BlockEnv {
        let mut env = BlockEnv {
            number: U256::from(self.number),
            beneficiary: Address::ZERO,
            timestamp: U256::from(self.timestamp),
            gas_limit: self.gas_limit,
            basefee: self.base_fee,
            difficulty: U256::ZERO,
            prevrandao: Some(self.prevrandao),
            ..Default::default()
        };
        env.set_blob_excess_gas_and_price(0, BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE);
        env
    }

    /// The context of the block that follows `parent` (whose hash is `parent_hash`).
    pub(crate) fn next(parent: &Header, parent_hash: B256, timestamp: u64) -> Self {
        BlockContext {
            number: parent.number + 1,
            timestamp: timestamp.max(parent.timestamp),
            gas_limit: parent.gas_limit,
            base_fee: next_base_fee(parent),
            prevrandao: keccak256(parent_hash),
        }
    }
}

/// EIP-1559: the base fee of the block after `parent`.
pub(crate) fn next_base_fee(parent: &Header) -> u64 {
    calc_next_block_base_fee(
        parent.gas_used,
        parent.gas_limit,
        parent.base_fee_per_gas.unwrap_or_default(),
        BaseFeeParams::ethereum(),
    )
}

/// The least gas a transaction must carry before executing anything (EIP-2028 calldata, access
/// lists, creation, and the EIP-7623 floor).
pub(crate) fn intrinsic_gas(tx: &TxEnvelope, sender: Address) -> Result<u64, TxError> {
    let env = tx_env(tx, sender)?;
    let gas = revm::context_interface::cfg::gas::calculate_initial_tx_gas_for_tx(&env, SPEC, None);
    Ok((gas.initial_regular_gas + gas.initial_state_gas).max(gas.floor_gas))
}

/// The revm transaction for a signed Ethereum transaction.
pub(crate) fn tx_env(tx: &TxEnvelope, sender: Address) -> Result<TxEnv, TxError> {
    if tx.is_eip4844() {
        return Err(TxError::UnsupportedType);
    }
    let mut env = TxEnv {
        tx_type: tx.ty(),
        caller: sender,
        gas_limit: tx.gas_limit(),
        gas_price: tx.max_fee_per_gas(),
        kind: tx.kind(),
        value: tx.value(),
        data: tx.input().clone(),
        nonce: tx.nonce(),
        chain_id: tx.chain_id(),
        access_list: tx.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: tx.max_priority_fee_per_gas(),
        ..Default::default()
    };
    if let Some(list) = tx.authorization_list() {
        env.set_signed_authorization(list.to_vec());
    }
    Ok(env)
}

fn tx_error(error: InvalidTransaction) -> TxError {
    use InvalidTransaction as E;
    match error {
        E::NonceTooLow { tx, state } => TxError::NonceTooLow {
            expected: state,
            got: tx,
        },
        E::LackOfFundForMaxFee { fee, balance } => TxError::InsufficientFunds {
            balance: balance.to_string(),
            cost: fee.to_string(),
        },
        E::GasPriceLessThanBasefee => TxError::FeeBelowBaseFee {
            max_fee: 0,
            base_fee: 0,
        },
        E::PriorityFeeGreaterThanMaxFee => TxError::TipAboveFeeCap,
        E::CallerGasLimitMoreThanBlock | E::TxGasLimitGreaterThanCap { .. } => {
            TxError::GasLimitExceeded
        }
        E::CallGasCostMoreThanGasLimit {
            initial_gas,
            gas_limit,
        } => TxError::IntrinsicGasTooLow {
            gas: gas_limit,
            needed: initial_gas,
        },
        E::GasFloorMoreThanGasLimit {
            gas_floor,
            gas_limit,
        } => TxError::IntrinsicGasTooLow {
            gas: gas_limit,
            needed: gas_floor,
        },
        other => TxError::Invalid(other.to_string()),
    }
}

fn evm_error<E: std::fmt::Display>(error: EVMError<E>) -> Error {
    match error {
        EVMError::Transaction(e) => Error::Tx(tx_error(e)),
        other => Error::InvalidInput(other.to_string()),
    }
}

/// Lets revm read the state and commit each transaction's changes into it.
struct BlockDb<'a>(&'a mut State);

impl Database for BlockDb<'_> {
    type Error = std::convert::Infallible;
    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        self.0.basic_ref(address)
    }
    fn code_by_hash(&mut self, hash: B256) -> Result<revm::bytecode::Bytecode, Self::Error> {
        self.0.code_by_hash_ref(hash)
    }
    fn storage(&mut self, address: Address, index: U256) -> Result<U256, Self::Error> {
        self.0.storage_ref(address, index)
    }
    fn block_hash(&mut self, number: u64) -> Result<B256, Self::Error> {
        self.0.block_hash_ref(number)
    }
}

impl DatabaseCommit for BlockDb<'_> {
    fn commit(&mut self, changes: EvmState) {
        self.0.commit(changes);
    }
}

/// The result of sealing a block.
pub(crate) struct Sealed {
    pub(crate) block: SealedBlock,
    /// Transactions refused by the EVM's checks, with the reason.
    pub(crate) rejected: Vec<(B256, TxError)>,
    /// Transactions that did not fit in the block's gas and wait for the next one.
    pub(crate) deferred: Vec<PendingTx>,
}

/// Executes `txs` in order on top of `state` and seals the block. The caller records the new
/// block's hash in `state` (for BLOCKHASH) if it keeps the block.
pub(crate) fn seal_block(
    state: &mut State,
    chain_id: u64,
    parent_hash: B256,
    ctx: BlockContext,
    txs: Vec<PendingTx>,
) -> Sealed {
    let mut transactions = Vec::with_capacity(txs.len());
    let mut senders = Vec::with_capacity(txs.len());
    let mut receipts = Vec::with_capacity(txs.len());
    let mut rejected = Vec::new();
    let mut deferred = Vec::new();
    let mut cumulative = 0u64;
    // Once a sender's transaction waits, so must its later ones: nonces run in order.
    let mut waiting = std::collections::HashSet::new();
    {
        let mut evm = Context::mainnet()
            .with_db(BlockDb(state))
            .modify_cfg_chained(|cfg| {
                cfg.chain_id = chain_id;
                cfg.set_spec_and_mainnet_gas_params(SPEC);
            })
            .with_block(ctx.env())
            .build_mainnet();
        for pending in txs {
            if waiting.contains(&pending.sender) {
                deferred.push(pending);
                continue;
            }
            if cumulative + pending.tx.gas_limit() > ctx.gas_limit {
                if pending.tx.gas_limit() > ctx.gas_limit {
                    rejected.push((pending.hash, TxError::GasLimitExceeded));
                } else {
                    waiting.insert(pending.sender);
                    deferred.push(pending);
                }
                continue;
            }
            let env = match tx_env(&pending.tx, pending.sender) {
                Ok(env) => env,
                Err(e) => {
                    rejected.push((pending.hash, e));
                    continue;
                }
            };
            let result = match evm.transact_commit(env) {
                Ok(result) => result,
                Err(EVMError::Transaction(InvalidTransaction::NonceTooHigh { .. })) => {
                    waiting.insert(pending.sender);
                    deferred.push(pending);
                    continue;
                }
                Err(EVMError::Transaction(e)) => {
                    rejected.push((pending.hash, tx_error(e)));
                    continue;
                }
                Err(other) => {
                    rejected.push((pending.hash, TxError::Invalid(other.to_string())));
                    continue;
                }
            };
            cumulative += result.tx_gas_used();
            let receipt = Receipt {
                status: result.is_success().into(),
                cumulative_gas_used: cumulative,
                logs: result.into_logs(),
            };
            receipts.push(ReceiptEnvelope::from_typed(
                pending.tx.tx_type(),
                ReceiptWithBloom::from(receipt),
            ));
            transactions.push(pending.tx);
            senders.push(pending.sender);
        }
    }
    let logs_bloom = receipts.iter().fold(Bloom::ZERO, |mut bloom, r| {
        bloom.accrue_bloom(r.logs_bloom());
        bloom
    });
    let header = Header {
        parent_hash,
        state_root: state.root(),
        transactions_root: calculate_transaction_root(&transactions),
        receipts_root: calculate_receipt_root(&receipts),
        logs_bloom,
        number: ctx.number,
        gas_limit: ctx.gas_limit,
        gas_used: cumulative,
        timestamp: ctx.timestamp,
        mix_hash: ctx.prevrandao,
        base_fee_per_gas: Some(ctx.base_fee),
        ..crate::block::header_template()
    };
    let block = SealedBlock {
        header,
        transactions,
        senders,
        receipts,
    };
    Sealed {
        block,
        rejected,
        deferred,
    }
}

/// Runs a call against `state` without changing it.
pub(crate) fn call(
    state: &StateAt<'_>,
    chain_id: u64,
    ctx: BlockContext,
    request: &CallRequest,
    gas: u64,
) -> Result<CallOutcome> {
    let priority = request.max_priority_fee_per_gas;
    let gas_price = request.gas_price.or(request.max_fee_per_gas).unwrap_or(0);
    let env = TxEnv {
        tx_type: request.tx_type.unwrap_or(
            if priority.is_some() || request.max_fee_per_gas.is_some() {
                2
            } else if request.access_list.is_some() {
                1
            } else {
                0
            },
        ),
        caller: request.from.unwrap_or_default(),
        gas_limit: gas,
        gas_price,
        gas_priority_fee: priority.map(|p| p.min(gas_price)),
        kind: request.to.map_or(TxKind::Create, TxKind::Call),
        value: request.value.unwrap_or_default(),
        data: request.input.clone().unwrap_or_default(),
        nonce: request
            .nonce
            .unwrap_or_else(|| state.nonce(&request.from.unwrap_or_default())),
        chain_id: Some(chain_id),
        access_list: request.access_list.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut evm = Context::mainnet()
        .with_db(WrapDatabaseRef(*state))
        .modify_cfg_chained(|cfg| {
            cfg.chain_id = chain_id;
            cfg.set_spec_and_mainnet_gas_params(SPEC);
            cfg.disable_base_fee = true;
            cfg.disable_nonce_check = true;
            cfg.disable_block_gas_limit = true;
        })
        .with_block(ctx.env())
        .build_mainnet();
    let result = evm.transact(env).map_err(evm_error)?.result;
    let gas_used = result.tx_gas_used();
    match result {
        ExecutionResult::Success { logs, output, .. } => Ok(CallOutcome {
            output: output.into_data(),
            gas_used,
            logs,
        }),
        ExecutionResult::Revert { output, .. } => Err(Error::Reverted {
            reason: revert_reason(&output),
            data: output,
        }),
        ExecutionResult::Halt { reason, .. } => Err(Error::Halted(format!("{reason:?}"))),
    }
}

/// Finds the least gas with which the call succeeds (binary search, as geth does).
pub(crate) fn estimate_gas(
    state: &StateAt<'_>,
    chain_id: u64,
    ctx: BlockContext,
    request: &CallRequest,
) -> Result<u64> {
    let mut hi = request
        .gas
        .unwrap_or(TX_GAS_CAP)
        .min(TX_GAS_CAP)
        .min(ctx.gas_limit);
    // Fails with the real reason (revert data, insufficient funds) when even the cap fails.
    let first = call(state, chain_id, ctx, request, hi)?;
    // A plain transfer to an account without code costs exactly the intrinsic 21,000 (geth).
    let plain = request.input.as_ref().is_none_or(|i| i.is_empty())
        && request.access_list.as_ref().is_none_or(|l| l.0.is_empty());
    if plain
        && let Some(to) = request.to
        && state.code(&to).is_none_or(|c| c.is_empty())
    {
        return Ok(first.gas_used);
    }
    let mut lo = first.gas_used.saturating_sub(1);
    // Most calls succeed with a little headroom over the gas they used (the 63/64 rule).
    let guess = (first.gas_used + 2_300) * 64 / 63;
    if guess < hi && call(state, chain_id, ctx, request, guess).is_ok() {
        hi = guess;
    }
    while lo + 1 < hi {
        // Stop once within 1.5% of the bound, like geth: each probe is a full execution.
        if (hi - lo) * 1000 / hi < 15 {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        match call(state, chain_id, ctx, request, mid) {
            Ok(_) => hi = mid,
            Err(Error::Tx(_) | Error::Reverted { .. } | Error::Halted(_)) => lo = mid,
            Err(other) => return Err(other),
        }
    }
    Ok(hi)
}

/// The human-readable reason of a revert, for `Error(string)` and `Panic(uint256)` payloads.
pub(crate) fn revert_reason(output: &[u8]) -> Option<String> {
    const ERROR: [u8; 4] = [0x08, 0xc3, 0x79, 0xa0];
    const PANIC: [u8; 4] = [0x4e, 0x48, 0x7b, 0x71];
    match output.get(..4)? {
        s if s == ERROR || s == PANIC => alloy::sol_types::decode_revert_reason(output),
        _ => None,
    }
}
