//! The genesis of a chain and the deterministic, pre-funded development accounts.

use alloy::{
    consensus::Header,
    primitives::{Address, B256, Bytes, U256, keccak256},
    signers::local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English},
};

use crate::{Error, Result};

/// The standard test mnemonic of Hardhat and Anvil, so tools and tutorials find the same accounts.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// What block 0 contains. Stored in the data directory so a restart rebuilds the same chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    pub chain_id: u64,
    pub timestamp: u64,
    pub gas_limit: u64,
    pub base_fee: u64,
    pub alloc: Vec<(Address, U256)>,
}

impl Genesis {
    /// Starting base fee, as on mainnet at London (1 gwei).
    pub const INITIAL_BASE_FEE: u64 = 1_000_000_000;
    pub const DEFAULT_GAS_LIMIT: u64 = 30_000_000;

    /// The genesis header. Its state root commits to the allocation (see `state.rs`).
    pub(crate) fn header(&self, state_root: B256) -> Header {
        Header {
            parent_hash: B256::ZERO,
            state_root,
            transactions_root: alloy::consensus::constants::EMPTY_TRANSACTIONS,
            receipts_root: alloy::consensus::constants::EMPTY_RECEIPTS,
            number: 0,
            gas_limit: self.gas_limit,
            timestamp: self.timestamp,
            extra_data: Bytes::from_static(b"medledger"),
            mix_hash: keccak256(self.chain_id.to_be_bytes()),
            base_fee_per_gas: Some(self.base_fee),
            ..crate::block::header_template()
        }
    }

    /// A small line-oriented text form (`key value` lines, one `alloc ADDRESS WEI` per account),
    /// readable by a person and free of any serialisation framework.
    pub(crate) fn to_text(&self) -> String {
        let mut out = format!(
            "chain_id {}\ntimestamp {}\ngas_limit {}\nbase_fee {}\n",
            self.chain_id, self.timestamp, self.gas_limit, self.base_fee
        );
        for (address, balance) in &self.alloc {
            out.push_str(&format!("alloc {address} {balance}\n"));
        }
        out
    }

    pub(crate) fn from_text(text: &str) -> Result<Self> {
        let bad = |line: &str| Error::Storage(format!("genesis file: cannot read line {line:?}"));
        let mut genesis = Genesis {
            chain_id: 0,
            timestamp: 0,
            gas_limit: 0,
            base_fee: 0,
            alloc: Vec::new(),
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut words = line.split_whitespace();
            let key = words.next().ok_or_else(|| bad(line))?;
            let mut next = || words.next().ok_or_else(|| bad(line));
            match key {
                "chain_id" => genesis.chain_id = next()?.parse().map_err(|_| bad(line))?,
                "timestamp" => genesis.timestamp = next()?.parse().map_err(|_| bad(line))?,
                "gas_limit" => genesis.gas_limit = next()?.parse().map_err(|_| bad(line))?,
                "base_fee" => genesis.base_fee = next()?.parse().map_err(|_| bad(line))?,
                "alloc" => {
                    let address: Address = next()?.parse().map_err(|_| bad(line))?;
                    let balance: U256 = next()?.parse().map_err(|_| bad(line))?;
                    genesis.alloc.push((address, balance));
                }
                _ => return Err(bad(line)),
            }
        }
        if genesis.chain_id == 0 || genesis.gas_limit == 0 {
            return Err(Error::Storage(
                "genesis file: chain_id or gas_limit missing".into(),
            ));
        }
        Ok(genesis)
    }
}

/// The node's own accounts: derived from a mnemonic at m/44'/60'/0'/0/i like Ganache and Anvil.
#[derive(Clone, Default)]
pub struct DevAccounts {
    signers: Vec<PrivateKeySigner>,
}

impl DevAccounts {
    pub fn from_mnemonic(phrase: &str, count: usize) -> Result<Self> {
        let signers = (0..count as u32)
            .map(|index| {
                MnemonicBuilder::<English>::default()
                    .phrase(phrase)
                    .index(index)
                    .and_then(|b| b.build())
                    .map_err(|e| Error::InvalidInput(format!("mnemonic: {e}")))
            })
            .collect::<Result<_>>()?;
        Ok(Self { signers })
    }

    pub fn signers(&self) -> &[PrivateKeySigner] {
        &self.signers
    }

    pub fn addresses(&self) -> Vec<Address> {
        self.signers.iter().map(|s| s.address()).collect()
    }

    pub fn signer(&self, address: &Address) -> Option<&PrivateKeySigner> {
        self.signers.iter().find(|s| s.address() == *address)
    }
}

impl std::fmt::Debug for DevAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevAccounts")
            .field("addresses", &self.addresses())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_accounts_match_hardhat_and_anvil() {
        let accounts = DevAccounts::from_mnemonic(DEV_MNEMONIC, 2).unwrap();
        let expected: Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
            .parse()
            .unwrap();
        assert_eq!(accounts.addresses()[0], expected);
        let expected: Address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
            .parse()
            .unwrap();
        assert_eq!(accounts.addresses()[1], expected);
    }

    #[test]
    fn genesis_text_round_trips() {
        let genesis = Genesis {
            chain_id: 1337,
            timestamp: 1_700_000_000,
            gas_limit: 30_000_000,
            base_fee: 7,
            alloc: vec![(Address::repeat_byte(1), U256::from(10).pow(U256::from(22)))],
        };
        assert_eq!(Genesis::from_text(&genesis.to_text()).unwrap(), genesis);
        assert!(Genesis::from_text("chain_id x\n").is_err());
    }
}
