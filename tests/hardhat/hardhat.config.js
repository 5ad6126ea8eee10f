// Hardhat 3's node for the API suite (crates/web/tests/it: Backend::Hardhat), configured as the
// other dev chains are: chain id 1337, Shanghai rules, the dev mnemonic's accounts funded.
export default {
  networks: {
    node: {
      type: "edr-simulated",
      chainId: 1337,
      hardfork: "shanghai",
      accounts: {
        mnemonic: "test test test test test test test test test test test junk",
        count: 2,
        accountsBalance: "1000000000000000000000000",
      },
    },
  },
};
