// ethers.js v6 compatibility of medledger's embedded Ethereum node, checked against Ganache:
// every test runs once per backend with the SAME expectations, so any behaviour difference
// between the two fails here.
//
//   node --test tests/js/node.test.mjs                   # both backends
//   CHAINS=medledger node --test tests/js/node.test.mjs  # just one
//
// Where the two legitimately differ in a detail (e.g. the exact gas price they suggest) the tests
// assert the property both must satisfy instead of a number. Where Ganache 7.9.2 itself breaks
// the Ethereum / JSON-RPC behaviour asserted here, the test is marked `todo` on Ganache only (it
// still runs and is reported, but does not fail the run); see GANACHE_BUGS.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  ContractFactory,
  Wallet,
  ZeroHash,
  getAddress,
  id as eventTopic,
  keccak256,
  parseEther,
  toBeHex,
  toQuantity,
  zeroPadValue,
} from "ethers";
import { CHAIN_ID, DEFAULT_BALANCE_ETH, backends, compile, startChain } from "./harness.mjs";

const COUNTER_SOURCE = `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

contract Counter {
    uint256 public count;

    event Incremented(address indexed by, uint256 value);

    error TooBig(uint256 got);

    constructor(uint256 start) {
        count = start;
    }

    function increment() external {
        count += 1;
        emit Incremented(msg.sender, count);
    }

    function add(uint256 n) external {
        if (n > 10) revert TooBig(n);
        count += n;
        emit Incremented(msg.sender, count);
    }

    function fail() external pure {
        require(false, "nope");
    }
}
`;

const counter = compile(COUNTER_SOURCE, "Counter");
const INCREMENTED = eventTopic("Incremented(address,uint256)");

// Known Ganache 7.9.2 deviations from Ethereum / JSON-RPC; the affected test is `todo` there.
const GANACHE_BUGS = {
  // After the account's last transaction is mined, Ganache still holds it in its pending-by-sender
  // heap and treats a new transaction with that nonce as its replacement; when it does refuse a
  // low nonce, its wording ("the tx doesn't have the correct nonce") is not one ethers maps.
  nonceTooLow:
    "Ganache 7.9.2 accepts (and mines) a transaction reusing an already mined nonce instead of " +
    'refusing it with "nonce too low" (cf. trufflesuite/ganache#3794)',
  methodNotFound:
    "Ganache 7.9.2 answers an unknown method with code -32700 (parse error), not -32601",
};
const ganacheBug = (kind, bug) => (kind === "ganache" ? { todo: GANACHE_BUGS[bug] } : {});

/** One raw JSON-RPC exchange over HTTP (a request object or a batch array). */
async function rawRpc(url, body) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, `HTTP ${res.status} for ${JSON.stringify(body)}`);
  return res.json();
}

/** Resolves to the rejection of `promise`; fails if it fulfils. */
async function rejection(promise, what) {
  try {
    const value = await promise;
    assert.fail(`${what}: expected a rejection, got ${JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v))}`);
  } catch (err) {
    if (err?.code === "ERR_ASSERTION") throw err;
    return err;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

for (const kind of backends) {
  describe(kind, () => {
    let chain;
    let provider;
    let wallets;
    let shared; // a Counter deployed by wallets[0] before the tests
    // Tests run in order on one chain per backend; each sends from its own dev wallet(s) so that
    // balance and nonce expectations do not depend on the others: 0 contracts, 1/2/3 transfers,
    // 4 blocks and lookups, 5 nonce reuse, 6 snapshots, 7 reverted tx, 8 events and history,
    // 9 mostly a recipient.

    const rpc = (method, params = []) => provider.send(method, params);
    const raw = (body) => rawRpc(chain.url, body);

    async function deployCounter(signer, start = 0n) {
      const contract = await new ContractFactory(counter.abi, counter.bytecode, signer).deploy(start);
      const receipt = await contract.deploymentTransaction().wait();
      assert.equal(receipt.status, 1);
      return { contract, receipt, address: await contract.getAddress() };
    }

    async function mined(txPromise) {
      const tx = await txPromise;
      const receipt = await tx.wait();
      assert.equal(receipt.status, 1, `transaction ${tx.hash} failed`);
      return { tx, receipt };
    }

    before(async () => {
      chain = await startChain(kind);
      provider = chain.provider;
      wallets = chain.wallets;
      shared = (await deployCounter(wallets[0], 0n)).contract;
    });

    after(async () => {
      await chain?.stop();
    });

    // --- chain identity and accounts ---------------------------------------------------------

    test("eth_chainId is 0x539 and net_version is 1337", async () => {
      assert.equal(await rpc("eth_chainId"), toQuantity(CHAIN_ID));
      assert.equal(await rpc("net_version"), String(CHAIN_ID));
      assert.equal(await rpc("net_listening"), true);
    });

    test("web3_sha3 is keccak-256", async () => {
      assert.equal(await rpc("web3_sha3", ["0x68656c6c6f"]), keccak256("0x68656c6c6f"));
    });

    test("eth_accounts are the mnemonic's dev accounts, in order", async () => {
      const accounts = (await rpc("eth_accounts")).map((a) => getAddress(a));
      assert.deepEqual(accounts, wallets.map((w) => w.address));
      assert.equal(accounts.length, 10);
    });

    test("every dev account starts with 1000 ETH and nonce 0 (state at block 0)", async () => {
      const genesis = await provider.getBlock(0);
      assert.equal(genesis.number, 0);
      for (const w of wallets) {
        assert.equal(await provider.getBalance(w.address, 0), parseEther(String(DEFAULT_BALANCE_ETH)), w.address);
        assert.equal(await provider.getTransactionCount(w.address, 0), 0, w.address);
      }
    });

    test("the block number grows by exactly one per mined transaction", async () => {
      const sender = wallets[4];
      let last = await provider.getBlockNumber();
      for (let i = 0; i < 3; i++) {
        const { tx, receipt } = await mined(sender.sendTransaction({ to: wallets[9].address, value: 1n }));
        assert.equal(receipt.blockNumber, last + 1);
        assert.equal(await provider.getBlockNumber(), last + 1);
        assert.equal(BigInt(await rpc("eth_blockNumber")), BigInt(last + 1));
        const block = await provider.getBlock(receipt.blockNumber);
        assert.deepEqual(block.transactions, [tx.hash]);
        last += 1;
      }
    });

    // --- value transfers and fee accounting --------------------------------------------------

    async function checkTransfer(sender, request, { type, gasUsed }) {
      const recipient = Wallet.createRandom().address;
      const value = parseEther("1.25") + 12345n;
      const before = await provider.getBalance(sender.address);

      const tx = await sender.sendTransaction({ to: recipient, value, type, ...request });
      assert.equal(tx.type, type);
      const receipt = await tx.wait();
      assert.equal(receipt.status, 1);
      assert.equal(receipt.type, type);
      assert.equal(receipt.from, sender.address);
      assert.equal(receipt.to, recipient);
      assert.equal(receipt.contractAddress, null);
      assert.equal(receipt.gasUsed, gasUsed, "intrinsic gas of the transfer");
      assert.equal(receipt.cumulativeGasUsed, gasUsed, "the transfer is alone in its block");

      // Exact fee accounting: sender pays value + gasUsed * effectiveGasPrice, recipient gets value.
      const after = await provider.getBalance(sender.address, receipt.blockNumber);
      assert.equal(await provider.getBalance(sender.address, receipt.blockNumber - 1), before);
      assert.equal(before - after, value + receipt.gasUsed * receipt.gasPrice);
      assert.equal(await provider.getBalance(recipient), value);

      // The effective gas price follows the type's pricing rule against the block's base fee.
      const block = await provider.getBlock(receipt.blockNumber);
      assert.ok(block.baseFeePerGas > 0n, "shanghai blocks carry a base fee");
      const fetched = await provider.getTransaction(tx.hash);
      assert.equal(fetched.type, type);
      if (type === 2) {
        const expected = fetched.maxFeePerGas < block.baseFeePerGas + fetched.maxPriorityFeePerGas
          ? fetched.maxFeePerGas
          : block.baseFeePerGas + fetched.maxPriorityFeePerGas;
        assert.equal(receipt.gasPrice, expected, "min(maxFee, baseFee + priorityFee)");
      } else {
        assert.equal(receipt.gasPrice, fetched.gasPrice, "legacy / 2930 pay their gasPrice");
        assert.ok(fetched.gasPrice >= block.baseFeePerGas);
      }
      const rawReceipt = await rpc("eth_getTransactionReceipt", [tx.hash]);
      assert.equal(BigInt(rawReceipt.effectiveGasPrice), receipt.gasPrice);
      assert.equal(rawReceipt.type, toQuantity(type));
      assert.equal(rawReceipt.status, "0x1");
      return { tx, receipt, fetched };
    }

    test("legacy (type 0) transfer: receipt and exact fee accounting", async () => {
      const { fetched } = await checkTransfer(wallets[1], {}, { type: 0, gasUsed: 21000n });
      assert.equal(fetched.chainId, BigInt(CHAIN_ID), "EIP-155 replay protection");
    });

    test("EIP-2930 (type 1) transfer with an access list: receipt and exact fee accounting", async () => {
      const accessList = [{ address: Wallet.createRandom().address, storageKeys: [ZeroHash] }];
      // An explicit gas limit keeps this test about execution and fees; gas estimation of
      // access-list transactions has its own test below.
      const { fetched } = await checkTransfer(
        wallets[2],
        { accessList, gasLimit: 40_000n },
        // 21000 + 2400 per address + 1900 per storage key (EIP-2930)
        { type: 1, gasUsed: 25300n },
      );
      assert.deepEqual(
        fetched.accessList.map((e) => ({ address: e.address, storageKeys: [...e.storageKeys] })),
        accessList,
      );
    });

    test("EIP-1559 (type 2) transfer: receipt and exact fee accounting", async () => {
      const { fetched } = await checkTransfer(wallets[3], {}, { type: 2, gasUsed: 21000n });
      assert.ok(fetched.maxFeePerGas >= fetched.maxPriorityFeePerGas);
    });

    test("eth_estimateGas covers the intrinsic gas of each transaction type", async () => {
      const sender = wallets[2];
      const to = Wallet.createRandom().address;
      const accessList = [{ address: Wallet.createRandom().address, storageKeys: [ZeroHash] }];
      // An estimate must cover the gas the transaction needs; geth (and medledger) may overshoot
      // by up to 1.5% (the binary search's error ratio).
      const cases = [
        { request: { type: 0 }, needed: 21000n },
        { request: { type: 2 }, needed: 21000n },
        { request: { type: 1, accessList }, needed: 25300n },
        { request: { type: 2, accessList }, needed: 25300n },
      ];
      for (const { request, needed } of cases) {
        const estimate = await provider.estimateGas({ from: sender.address, to, value: 1n, ...request });
        const label = `estimate ${estimate} for ${JSON.stringify(request)}`;
        assert.ok(estimate >= needed, `${label} < the ${needed} it needs`);
        assert.ok(estimate * 1000n <= needed * 1015n, `${label} is > 1.5% over ${needed}`);
      }
      // so ethers' ordinary path (estimate, then send) works for an access-list transaction
      const tx = await sender.sendTransaction({ to, value: 1n, type: 1, accessList });
      const receipt = await tx.wait();
      assert.equal(receipt.status, 1);
      assert.equal(receipt.gasUsed, 25300n);
    });

    test("eth_sendTransaction signs for a dev account (ethers JsonRpcSigner)", async () => {
      const signer = await provider.getSigner(wallets[9].address);
      const to = Wallet.createRandom().address;
      const tx = await signer.sendTransaction({ to, value: 1000n });
      const receipt = await tx.wait();
      assert.equal(receipt.status, 1);
      assert.equal(receipt.from, wallets[9].address);
      assert.equal(receipt.to, to);
      assert.equal(await provider.getBalance(to), 1000n);
      const spent =
        (await provider.getBalance(signer.address, receipt.blockNumber - 1)) -
        (await provider.getBalance(signer.address, receipt.blockNumber));
      assert.equal(spent, 1000n + receipt.gasUsed * receipt.gasPrice);
    });

    // --- contracts ----------------------------------------------------------------------------

    test("deploy a contract, call it, read state via eth_call, decode its logs", async () => {
      const deployer = wallets[0];
      const { contract, receipt, address } = await deployCounter(deployer, 7n);
      assert.equal(receipt.contractAddress, address);
      assert.equal(receipt.to, null);
      assert.equal(receipt.from, deployer.address);
      assert.equal(receipt.logs.length, 0);
      assert.equal(await provider.getCode(address), counter.deployedBytecode);
      assert.equal(await provider.getCode(address, receipt.blockNumber - 1), "0x");
      assert.equal(await contract.count(), 7n);

      const { tx, receipt: incReceipt } = await mined(contract.increment());
      assert.equal(incReceipt.to, address);
      assert.equal(incReceipt.logs.length, 1);
      const log = incReceipt.logs[0];
      assert.equal(log.address, address);
      assert.deepEqual([...log.topics], [INCREMENTED, zeroPadValue(deployer.address, 32).toLowerCase()]);
      assert.equal(log.transactionHash, tx.hash);
      assert.equal(log.blockNumber, incReceipt.blockNumber);
      assert.equal(log.blockHash, incReceipt.blockHash);
      assert.equal(log.index, 0);
      const parsed = contract.interface.parseLog(log);
      assert.equal(parsed.name, "Incremented");
      assert.equal(parsed.args.by, deployer.address);
      assert.equal(parsed.args.value, 8n);
      assert.equal(await contract.count(), 8n);

      await mined(contract.add(3n));
      assert.equal(await contract.count(), 11n);
      // count lives in slot 0
      assert.equal(await provider.getStorage(address, 0), toBeHex(11n, 32));
    });

    test("a static call reverting with a custom error carries TooBig(got) in its data", async () => {
      const err = await rejection(shared.add.staticCall(11n), "add(11)");
      assert.equal(err.code, "CALL_EXCEPTION");
      assert.ok(typeof err.data === "string" && err.data.startsWith("0x"), `no revert data: ${err.message}`);
      const parsed = shared.interface.parseError(err.data);
      assert.equal(parsed?.name, "TooBig");
      assert.equal(parsed.args.got, 11n);
      assert.equal(err.revert?.name, "TooBig");
      // and the raw JSON-RPC error: code 3, data = the revert bytes
      const res = await raw({
        jsonrpc: "2.0",
        id: 1,
        method: "eth_call",
        params: [{ to: await shared.getAddress(), data: shared.interface.encodeFunctionData("add", [11n]) }, "latest"],
      });
      assert.ok(res.error, "eth_call of a revert must answer an error");
      assert.equal(res.error.data, err.data);
    });

    test('require(false, "nope") surfaces reason "nope"', async () => {
      const err = await rejection(shared.fail.staticCall(), "fail()");
      assert.equal(err.code, "CALL_EXCEPTION");
      assert.equal(err.reason, "nope");
      assert.equal(err.revert?.name, "Error");
      assert.deepEqual([...err.revert.args], ["nope"]);
    });

    test("eth_estimateGas of a reverting call is rejected", async () => {
      const err = await rejection(shared.add.estimateGas(11n), "estimateGas add(11)");
      assert.equal(err.code, "CALL_EXCEPTION");
      const err2 = await rejection(shared.fail.estimateGas(), "estimateGas fail()");
      assert.equal(err2.code, "CALL_EXCEPTION");
    });

    test("a reverting transaction with an explicit gas limit is mined with status 0", async () => {
      const sender = wallets[7];
      const contract = shared.connect(sender);
      const countBefore = await shared.count();
      const balanceBefore = await provider.getBalance(sender.address);
      const blockBefore = await provider.getBlockNumber();

      const tx = await contract.add(11n, { gasLimit: 100_000n });
      const err = await rejection(tx.wait(), "wait() of a reverted tx");
      assert.equal(err.code, "CALL_EXCEPTION");
      const receipt = err.receipt;
      assert.ok(receipt, "the CALL_EXCEPTION carries the receipt");
      assert.equal(receipt.status, 0);
      assert.equal(receipt.hash, tx.hash);
      assert.equal(receipt.blockNumber, blockBefore + 1);
      assert.equal(receipt.logs.length, 0);
      assert.ok(receipt.gasUsed > 21000n && receipt.gasUsed < 100_000n, `gasUsed ${receipt.gasUsed}`);
      assert.equal((await rpc("eth_getTransactionReceipt", [tx.hash])).status, "0x0");
      // a reverted tx still pays for its gas (and only for it), and still uses its nonce
      assert.equal(balanceBefore - (await provider.getBalance(sender.address)), receipt.gasUsed * receipt.gasPrice);
      assert.equal(await provider.getTransactionCount(sender.address), tx.nonce + 1);
      assert.equal(await shared.count(), countBefore);
    });

    // --- refusals -----------------------------------------------------------------------------

    test("reusing a nonce is refused: NONCE_EXPIRED", ganacheBug(kind, "nonceTooLow"), async () => {
      const sender = wallets[5];
      const { tx } = await mined(sender.sendTransaction({ to: wallets[9].address, value: 1n }));
      const err = await rejection(
        sender.sendTransaction({ to: wallets[9].address, value: 2n, nonce: tx.nonce }),
        "send with a used nonce",
      );
      assert.equal(err.code, "NONCE_EXPIRED", err.message);
      assert.match(err.info?.error?.message ?? "", /nonce too low/);
      assert.equal(await provider.getTransactionCount(sender.address), tx.nonce + 1);
    });

    test("a wallet without ETH is refused: INSUFFICIENT_FUNDS", async () => {
      const broke = Wallet.createRandom(provider);
      const to = wallets[9].address;
      // the ordinary path (ethers estimates gas first) ...
      const err = await rejection(broke.sendTransaction({ to, value: 1n }), "send from an empty wallet");
      assert.equal(err.code, "INSUFFICIENT_FUNDS", err.message);
      // ... and straight to eth_sendRawTransaction
      const err2 = await rejection(
        broke.sendTransaction({ to, value: 1n, gasLimit: 21000n, type: 2 }),
        "raw send from an empty wallet",
      );
      assert.equal(err2.code, "INSUFFICIENT_FUNDS", err2.message);
      assert.match(err2.info?.error?.message ?? "", /insufficient funds for gas \* price \+ value/);
      assert.equal(await provider.getTransactionCount(broke.address), 0);
    });

    // --- logs and filters ---------------------------------------------------------------------

    test("eth_getLogs by address, by topic and over a block range", async () => {
      const a = await deployCounter(wallets[0], 0n);
      const b = await deployCounter(wallets[0], 100n);
      const from = a.receipt.blockNumber;
      const r1 = (await mined(a.contract.increment())).receipt; // wallet 0 on A
      const r2 = (await mined(b.contract.connect(wallets[9]).increment())).receipt; // wallet 9 on B
      const r3 = (await mined(b.contract.increment())).receipt; // wallet 0 on B
      const to = r3.blockNumber;
      const decode = (logs) =>
        logs.map((l) => {
          const p = a.contract.interface.parseLog(l);
          return { address: l.address, block: l.blockNumber, by: p.args.by, value: p.args.value };
        });

      const byA = await provider.getLogs({ address: a.address, fromBlock: from, toBlock: to });
      assert.deepEqual(decode(byA), [{ address: a.address, block: r1.blockNumber, by: wallets[0].address, value: 1n }]);

      const byB = await provider.getLogs({ address: b.address, fromBlock: from, toBlock: to });
      assert.deepEqual(decode(byB), [
        { address: b.address, block: r2.blockNumber, by: wallets[9].address, value: 101n },
        { address: b.address, block: r3.blockNumber, by: wallets[0].address, value: 102n },
      ]);

      const byTopic = await provider.getLogs({
        topics: [INCREMENTED, zeroPadValue(wallets[0].address, 32)],
        fromBlock: from,
        toBlock: to,
      });
      assert.deepEqual(decode(byTopic), [
        { address: a.address, block: r1.blockNumber, by: wallets[0].address, value: 1n },
        { address: b.address, block: r3.blockNumber, by: wallets[0].address, value: 102n },
      ]);

      // the range bounds are inclusive and respected
      const middle = await provider.getLogs({
        address: [a.address, b.address],
        topics: [INCREMENTED],
        fromBlock: r2.blockNumber,
        toBlock: r2.blockNumber,
      });
      assert.deepEqual(decode(middle), [{ address: b.address, block: r2.blockNumber, by: wallets[9].address, value: 101n }]);
      const none = await provider.getLogs({ address: a.address, fromBlock: r2.blockNumber, toBlock: to });
      assert.deepEqual(none, []);
      const atHash = await provider.getLogs({ blockHash: r3.blockHash });
      assert.deepEqual(decode(atHash), [{ address: b.address, block: r3.blockNumber, by: wallets[0].address, value: 102n }]);

      // raw log objects carry their position
      const rawLogs = await rpc("eth_getLogs", [
        { address: b.address, fromBlock: toQuantity(from), toBlock: toQuantity(to) },
      ]);
      assert.equal(rawLogs.length, 2);
      assert.equal(rawLogs[1].transactionHash, r3.hash);
      assert.equal(rawLogs[1].blockHash, r3.blockHash);
      assert.equal(rawLogs[1].blockNumber, toQuantity(r3.blockNumber));
      assert.equal(rawLogs[1].logIndex, "0x0");
      assert.equal(rawLogs[1].transactionIndex, "0x0");
      assert.equal(rawLogs[1].removed, false);
    });

    test("eth_newFilter + eth_getFilterChanges report only logs that are new", async () => {
      const c = await deployCounter(wallets[0], 0n);
      await mined(c.contract.increment()); // before the filter: never reported as a change
      const filterId = await rpc("eth_newFilter", [{ address: c.address }]);
      assert.deepEqual(await rpc("eth_getFilterChanges", [filterId]), []);

      const r1 = (await mined(c.contract.increment())).receipt;
      const r2 = (await mined(c.contract.increment())).receipt;
      const changes = await rpc("eth_getFilterChanges", [filterId]);
      assert.deepEqual(
        changes.map((l) => [l.transactionHash, BigInt(l.data)]),
        [
          [r1.hash, 2n],
          [r2.hash, 3n],
        ],
      );
      assert.deepEqual(await rpc("eth_getFilterChanges", [filterId]), [], "changes are consumed");

      // blocks without matching logs add nothing
      await mined(shared.increment());
      assert.deepEqual(await rpc("eth_getFilterChanges", [filterId]), []);

      // eth_getFilterLogs answers the whole filter range (here from the deployment on)
      const fromDeploy = await rpc("eth_newFilter", [{ address: c.address, fromBlock: toQuantity(c.receipt.blockNumber) }]);
      const all = await rpc("eth_getFilterLogs", [fromDeploy]);
      assert.deepEqual(all.map((l) => BigInt(l.data)), [1n, 2n, 3n]);

      assert.equal(await rpc("eth_uninstallFilter", [filterId]), true);
      assert.equal(await rpc("eth_uninstallFilter", [fromDeploy]), true);
      assert.equal(await rpc("eth_uninstallFilter", [filterId]), false);
      await rejection(rpc("eth_getFilterChanges", [filterId]), "changes of an uninstalled filter");
    });

    test("eth_newBlockFilter returns the hashes of new blocks", async () => {
      const filterId = await rpc("eth_newBlockFilter");
      assert.deepEqual(await rpc("eth_getFilterChanges", [filterId]), []);
      const start = await provider.getBlockNumber();
      await rpc("evm_mine");
      const { receipt } = await mined(wallets[4].sendTransaction({ to: wallets[9].address, value: 1n }));
      assert.equal(receipt.blockNumber, start + 2);
      const expected = [(await provider.getBlock(start + 1)).hash, receipt.blockHash];
      assert.deepEqual(await rpc("eth_getFilterChanges", [filterId]), expected);
      assert.deepEqual(await rpc("eth_getFilterChanges", [filterId]), []);
      assert.equal(await rpc("eth_uninstallFilter", [filterId]), true);
    });

    test('contract.on("Incremented") fires for a new event', async () => {
      const c = await deployCounter(wallets[0], 41n);
      const events = [];
      await c.contract.on("Incremented", (by, value, event) => events.push({ by, value, event }));
      try {
        // ethers installs its eth_newFilter asynchronously and only sees events after that, so
        // give it a moment, and retry with another event if the first one came too early.
        await sleep(200);
        const sent = new Map(); // tx hash -> value emitted
        for (let attempt = 0; attempt < 5 && events.length === 0; attempt++) {
          const { receipt } = await mined(c.contract.connect(wallets[8]).increment());
          sent.set(receipt.hash, c.contract.interface.parseLog(receipt.logs[0]).args.value);
          for (let waited = 0; waited < 2_000 && events.length === 0; waited += 25) await sleep(25);
        }
        assert.ok(events.length > 0, "the Incremented listener never fired");
        const got = events[0];
        assert.equal(got.by, wallets[8].address);
        assert.ok(sent.has(got.event.log.transactionHash), "the event belongs to one of our transactions");
        assert.equal(got.value, sent.get(got.event.log.transactionHash));
        assert.equal(got.event.log.address, c.address);
      } finally {
        await c.contract.removeAllListeners();
      }
    });

    // --- blocks and transactions --------------------------------------------------------------

    test("eth_getBlockByNumber / ByHash, with hashes or full transactions", async () => {
      const { tx, receipt } = await mined(wallets[4].sendTransaction({ to: wallets[9].address, value: 7n }));
      const n = toQuantity(receipt.blockNumber);

      const light = await rpc("eth_getBlockByNumber", [n, false]);
      assert.equal(light.number, n);
      assert.equal(light.hash, receipt.blockHash);
      assert.deepEqual(light.transactions, [tx.hash]);
      assert.equal(BigInt(light.gasUsed), receipt.gasUsed);
      assert.ok(BigInt(light.baseFeePerGas) > 0n);
      const parent = await rpc("eth_getBlockByNumber", [toQuantity(receipt.blockNumber - 1), false]);
      assert.equal(light.parentHash, parent.hash);
      assert.ok(BigInt(light.timestamp) >= BigInt(parent.timestamp));

      const full = await rpc("eth_getBlockByNumber", [n, true]);
      assert.equal(full.hash, light.hash);
      assert.equal(full.transactions.length, 1);
      const ftx = full.transactions[0];
      assert.equal(ftx.hash, tx.hash);
      assert.equal(getAddress(ftx.from), wallets[4].address);
      assert.equal(ftx.blockHash, receipt.blockHash);
      assert.equal(ftx.blockNumber, n);
      assert.equal(ftx.transactionIndex, "0x0");
      assert.equal(BigInt(ftx.value), 7n);

      assert.deepEqual(await rpc("eth_getBlockByHash", [receipt.blockHash, false]), light);
      assert.deepEqual(await rpc("eth_getBlockByHash", [receipt.blockHash, true]), full);
      assert.equal(await rpc("eth_getBlockTransactionCountByNumber", [n]), "0x1");
      assert.equal(await rpc("eth_getBlockTransactionCountByHash", [receipt.blockHash]), "0x1");
      // (only identity fields: Ganache 7.9.2 reports gasPrice 0x0 for mined 1559 txs here)
      const identity = (t) => t && [t.hash, t.blockHash, t.blockNumber, t.transactionIndex, t.nonce, t.from, t.to, t.value];
      assert.deepEqual(identity(await rpc("eth_getTransactionByBlockNumberAndIndex", [n, "0x0"])), identity(ftx));
      assert.deepEqual(identity(await rpc("eth_getTransactionByBlockHashAndIndex", [receipt.blockHash, "0x0"])), identity(ftx));

      // ethers' view of the same block
      const block = await provider.getBlock(receipt.blockNumber, true);
      assert.equal(block.hash, receipt.blockHash);
      assert.equal(block.prefetchedTransactions[0].hash, tx.hash);
      assert.equal((await provider.getBlock(receipt.blockHash)).number, receipt.blockNumber);

      // blocks that do not exist
      const future = toQuantity(receipt.blockNumber + 1000);
      assert.equal(await rpc("eth_getBlockByNumber", [future, false]), null);
      assert.equal(await rpc("eth_getBlockByHash", [ZeroHash, false]), null);
    });

    test("eth_getTransactionByHash fields; unknown hashes answer null", async () => {
      const sender = wallets[4];
      const nonce = await provider.getTransactionCount(sender.address);
      const { tx, receipt } = await mined(
        sender.sendTransaction({ to: wallets[9].address, value: 99n, data: "0x1234" }),
      );
      const got = await rpc("eth_getTransactionByHash", [tx.hash]);
      assert.equal(got.hash, tx.hash);
      assert.equal(got.nonce, toQuantity(nonce));
      assert.equal(got.blockNumber, toQuantity(receipt.blockNumber));
      assert.equal(got.blockHash, receipt.blockHash);
      assert.equal(got.transactionIndex, "0x0");
      assert.equal(getAddress(got.from), sender.address);
      assert.equal(getAddress(got.to), wallets[9].address);
      assert.equal(got.value, "0x63");
      assert.equal(got.input, "0x1234");
      assert.equal(BigInt(got.gas), tx.gasLimit);
      assert.equal(got.type, "0x2");
      assert.equal(got.chainId, toQuantity(CHAIN_ID));
      assert.equal(BigInt(got.maxFeePerGas), tx.maxFeePerGas);
      assert.equal(BigInt(got.maxPriorityFeePerGas), tx.maxPriorityFeePerGas);
      assert.equal(BigInt(got.gasPrice), receipt.gasPrice, "mined 1559 txs report the effective price");
      assert.equal(got.r, tx.signature.r);
      assert.equal(got.s, tx.signature.s);

      const unknown = keccak256("0xdeadbeef");
      assert.equal(await rpc("eth_getTransactionByHash", [unknown]), null);
      assert.equal(await rpc("eth_getTransactionReceipt", [unknown]), null);
      assert.equal(await provider.getTransaction(unknown), null);
    });

    test('eth_getTransactionCount "pending" equals "latest" once mined', async () => {
      const sender = wallets[4];
      const latest = await provider.getTransactionCount(sender.address, "latest");
      assert.equal(await provider.getTransactionCount(sender.address, "pending"), latest);
      await mined(sender.sendTransaction({ to: wallets[9].address, value: 1n }));
      assert.equal(await provider.getTransactionCount(sender.address, "latest"), latest + 1);
      assert.equal(await provider.getTransactionCount(sender.address, "pending"), latest + 1);
    });

    // --- fees ---------------------------------------------------------------------------------

    test("eth_feeHistory: oldestBlock, baseFeePerGas has count + 1 entries, rewards", async () => {
      const head = await provider.getBlockNumber();
      assert.ok(head >= 4, "needs a few blocks");
      for (const newest of ["latest", toQuantity(head)]) {
        const h = await rpc("eth_feeHistory", ["0x4", newest, [25, 75]]);
        assert.equal(h.oldestBlock, toQuantity(head - 3), `oldestBlock for ${newest}`);
        assert.equal(h.baseFeePerGas.length, 5);
        assert.equal(h.gasUsedRatio.length, 4);
        assert.equal(h.reward.length, 4);
        for (const fee of h.baseFeePerGas) assert.ok(BigInt(fee) > 0n, `base fee ${fee}`);
        for (const ratio of h.gasUsedRatio) assert.ok(ratio >= 0 && ratio <= 1, `ratio ${ratio}`);
        for (const r of h.reward) {
          assert.equal(r.length, 2);
          assert.ok(BigInt(r[0]) <= BigInt(r[1]), "percentiles rise");
        }
        // the base fee reported for each block is the block's own
        for (let i = 0; i < 4; i++) {
          const block = await provider.getBlock(head - 3 + i);
          assert.equal(BigInt(h.baseFeePerGas[i]), block.baseFeePerGas, `block ${head - 3 + i}`);
        }
      }
      // without percentiles there is no reward field
      const bare = await rpc("eth_feeHistory", ["0x2", "latest", []]);
      assert.equal(bare.baseFeePerGas.length, 3);
      assert.equal(bare.reward, undefined);
    });

    test("eth_gasPrice, eth_maxPriorityFeePerGas and getFeeData are usable", async () => {
      const gasPrice = BigInt(await rpc("eth_gasPrice"));
      const tip = BigInt(await rpc("eth_maxPriorityFeePerGas"));
      assert.ok(gasPrice > 0n && tip > 0n);
      // what the node suggests must get a tx into the next block
      const history = await rpc("eth_feeHistory", ["0x1", "latest", []]);
      const nextBaseFee = BigInt(history.baseFeePerGas[1]);
      assert.ok(gasPrice >= nextBaseFee, `gasPrice ${gasPrice} < next base fee ${nextBaseFee}`);

      const fee = await provider.getFeeData();
      assert.equal(fee.gasPrice, gasPrice);
      assert.equal(fee.maxPriorityFeePerGas, tip);
      assert.ok(fee.maxFeePerGas >= fee.maxPriorityFeePerGas + nextBaseFee);
    });

    // --- dev methods --------------------------------------------------------------------------

    test("evm_snapshot / evm_revert restore balances, nonces and the block number", async () => {
      const sender = wallets[6];
      const recipient = Wallet.createRandom().address;
      const head = await provider.getBlockNumber();
      const balance = await provider.getBalance(sender.address);
      const nonce = await provider.getTransactionCount(sender.address);

      const snapshot = await rpc("evm_snapshot");
      const { tx } = await mined(sender.sendTransaction({ to: recipient, value: parseEther("3") }));
      await rpc("evm_mine");
      assert.equal(await provider.getBlockNumber(), head + 2);
      assert.equal(await provider.getBalance(recipient), parseEther("3"));

      assert.equal(await rpc("evm_revert", [snapshot]), true);
      assert.equal(await provider.getBlockNumber(), head);
      assert.equal(await provider.getBalance(sender.address), balance);
      assert.equal(await provider.getBalance(recipient), 0n);
      assert.equal(await provider.getTransactionCount(sender.address), nonce);
      assert.equal(await rpc("eth_getTransactionReceipt", [tx.hash]), null, "the reverted tx is gone");
      assert.equal(await rpc("evm_revert", [snapshot]), false, "a snapshot is used up by reverting to it");

      // and the chain goes on from the restored state
      const { receipt } = await mined(sender.sendTransaction({ to: recipient, value: 5n }));
      assert.equal(receipt.blockNumber, head + 1);
      assert.equal(await provider.getBalance(recipient), 5n);
    });

    test("evm_increaseTime + evm_mine move the next block's timestamp forward", async () => {
      const before = await provider.getBlock("latest");
      await rpc("evm_increaseTime", [3600]);
      await rpc("evm_mine");
      const after = await provider.getBlock("latest");
      assert.equal(after.number, before.number + 1);
      assert.ok(after.timestamp >= before.timestamp + 3600, `${after.timestamp} < ${before.timestamp} + 3600`);
      assert.ok(after.timestamp < before.timestamp + 3600 + 120, "but not by much more");
    });

    test("eth_call at a historical block number sees the state of that block", async () => {
      const { contract, receipt, address } = await deployCounter(wallets[8], 5n);
      const d = receipt.blockNumber;
      await mined(contract.increment());
      await mined(contract.increment());
      assert.equal(await contract.count({ blockTag: d }), 5n);
      assert.equal(await contract.count({ blockTag: d + 1 }), 6n);
      assert.equal(await contract.count({ blockTag: d + 2 }), 7n);
      assert.equal(await contract.count({ blockTag: "latest" }), 7n);
      const data = contract.interface.encodeFunctionData("count");
      assert.equal(await rpc("eth_call", [{ to: address, data }, toQuantity(d + 1)]), toBeHex(6n, 32));
      // before the deployment there is no code at the address
      assert.equal(await rpc("eth_call", [{ to: address, data }, toQuantity(d - 1)]), "0x");
      assert.equal(await provider.getStorage(address, 0, d), toBeHex(5n, 32));
    });

    // --- JSON-RPC transport -------------------------------------------------------------------

    test("a JSON-RPC batch gets one answer per request", async () => {
      const head = await provider.getBlockNumber();
      const answers = await raw([
        { jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] },
        { jsonrpc: "2.0", id: "two", method: "eth_blockNumber", params: [] },
      ]);
      assert.ok(Array.isArray(answers));
      assert.equal(answers.length, 2);
      const byId = new Map(answers.map((a) => [a.id, a]));
      assert.equal(byId.get(1).jsonrpc, "2.0");
      assert.equal(byId.get(1).result, toQuantity(CHAIN_ID));
      assert.equal(byId.get("two").result, toQuantity(head));
    });

    test("an unknown method answers code -32601", ganacheBug(kind, "methodNotFound"), async () => {
      const single = await raw({ jsonrpc: "2.0", id: 7, method: "eth_noSuchMethod", params: [] });
      assert.equal(single.id, 7);
      assert.equal(single.result, undefined);
      assert.equal(single.error?.code, -32601, JSON.stringify(single));
      // in a batch, the other request is still answered
      const batch = await raw([
        { jsonrpc: "2.0", id: 1, method: "eth_noSuchMethod", params: [] },
        { jsonrpc: "2.0", id: 2, method: "eth_chainId", params: [] },
      ]);
      const byId = new Map(batch.map((a) => [a.id, a]));
      assert.equal(byId.get(1).error?.code, -32601);
      assert.equal(byId.get(2).result, toQuantity(CHAIN_ID));
    });
  });
}
