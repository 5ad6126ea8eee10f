// Shared harness for the ethers.js suites: starts a dev chain (medledger's embedded node or
// Ganache) on a free loopback port and hands back an ethers provider plus the funded dev wallets.
//
//   import { backends, startChain, compile } from "./harness.mjs";
//
// `backends` is ["medledger", "ganache"], narrowed by the env CHAINS (comma-separated), e.g.
// `CHAINS=medledger node --test tests/js/node.test.mjs`.
//
// medledger: $MEDLEDGER_BIN, else $CARGO_TARGET_DIR/debug/medledger, else target/debug/medledger,
// run as `medledger node --in-memory --rpc-addr 127.0.0.1:0`. Ganache 7: `ganache.server(...)` on
// 127.0.0.1, in a child node process (see startGanache). Set CHAIN_LOG=1 to see their stderr.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { HDNodeWallet, JsonRpcProvider, Mnemonic, Wallet } from "ethers";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export const DEV_MNEMONIC = "test test test test test test test test test test test junk";
export const CHAIN_ID = 1337;
export const DEFAULT_ACCOUNTS = 10;
export const DEFAULT_BALANCE_ETH = 1000;

const ALL_BACKENDS = ["medledger", "ganache"];

function selectBackends() {
  const wanted = (process.env.CHAINS ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (wanted.length === 0) return [...ALL_BACKENDS];
  const unknown = wanted.filter((w) => !ALL_BACKENDS.includes(w));
  if (unknown.length > 0) {
    throw new Error(
      `CHAINS=${process.env.CHAINS}: unknown backend(s) ${unknown.join(", ")}; ` +
        `choose from ${ALL_BACKENDS.join(", ")}`,
    );
  }
  return ALL_BACKENDS.filter((b) => wanted.includes(b));
}

/** The backends every suite runs against, in order. */
export const backends = selectBackends();

/** Path of the medledger binary: $MEDLEDGER_BIN, else $CARGO_TARGET_DIR (or <repo>/target)/debug. */
export function medledgerBin() {
  if (process.env.MEDLEDGER_BIN) return path.resolve(process.env.MEDLEDGER_BIN);
  const targetDir = process.env.CARGO_TARGET_DIR
    ? path.resolve(process.env.CARGO_TARGET_DIR)
    : path.join(repoRoot, "target");
  return path.join(targetDir, "debug", "medledger");
}

/** The dev keys of the mnemonic (m/44'/60'/0'/0/i), derived once per count. */
const keyCache = new Map();
export function devPrivateKeys(count = DEFAULT_ACCOUNTS, mnemonic = DEV_MNEMONIC) {
  const cacheKey = `${mnemonic}/${count}`;
  if (!keyCache.has(cacheKey)) {
    // Derive the account-level parent once (one PBKDF2), then its children.
    const parent = HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(mnemonic), "m/44'/60'/0'/0");
    const keys = [];
    for (let i = 0; i < count; i++) keys.push(parent.deriveChild(i).privateKey);
    keyCache.set(cacheKey, keys);
  }
  return keyCache.get(cacheKey);
}

function makeProvider(url, chainId) {
  return new JsonRpcProvider(url, chainId, {
    staticNetwork: true,
    pollingInterval: 50,
    // Never serve eth_blockNumber etc. from ethers' cache: tests read state right after mining.
    cacheTimeout: -1,
  });
}

const LISTEN_TIMEOUT_MS = 30_000;

// Children still running; killed if this process exits without stopping them (e.g. a crash).
const liveChildren = new Set();
process.on("exit", () => {
  for (const child of liveChildren) child.kill("SIGKILL");
});

/**
 * Spawns `command args` and resolves once it prints "Listening on 127.0.0.1:PORT" on stdout.
 * Rejects (with the process's stdout and stderr) on early exit or after LISTEN_TIMEOUT_MS.
 */
async function spawnListening(label, command, args, spawnOpts = {}) {
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"], ...spawnOpts });
  liveChildren.add(child);
  let stdout = "";
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
    if (process.env.CHAIN_LOG) process.stderr.write(chunk);
  });
  child.stdout.setEncoding("utf8");
  const exited = new Promise((resolve) =>
    child.once("exit", (code, signal) => {
      liveChildren.delete(child);
      resolve({ code, signal });
    }),
  );

  const port = await new Promise((resolve, reject) => {
    let settled = false;
    const fail = (why) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(
        new Error(
          `${why}\ncommand: ${command} ${args.join(" ")}\n` +
            `--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`,
        ),
      );
    };
    const timer = setTimeout(
      () => fail(`${label} did not print "Listening on 127.0.0.1:PORT" within ${LISTEN_TIMEOUT_MS / 1000} s`),
      LISTEN_TIMEOUT_MS,
    );
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      const m = stdout.match(/^Listening on 127\.0\.0\.1:(\d+)\s*$/m);
      if (m && !settled) {
        settled = true;
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once("error", (err) => fail(`could not start ${label}: ${err.message}`));
    exited.then(({ code, signal }) => fail(`${label} exited early (code ${code}, signal ${signal})`));
  });
  // Keep draining stdout so a chatty child never blocks on a full pipe.
  child.stdout.resume();

  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

async function startMedledger(opts) {
  const bin = medledgerBin();
  if (!existsSync(bin)) {
    throw new Error(
      `medledger binary not found at ${bin}; build it with \`cargo build -p medledger\` ` +
        `(or point MEDLEDGER_BIN at it)`,
    );
  }
  const args = ["node", "--in-memory", "--rpc-addr", "127.0.0.1:0"];
  if (opts.chainId != null) args.push("--chain-id", String(opts.chainId));
  if (opts.accounts != null) args.push("--accounts", String(opts.accounts));
  if (opts.balance != null) args.push("--balance", String(opts.balance));
  if (opts.blockTime != null) args.push("--block-time", String(opts.blockTime));
  args.push(...(opts.args ?? []));
  return spawnListening("medledger", bin, args);
}

function ganacheOptions(opts) {
  return {
    // networkId: net_version answers the chain id, as on geth and medledger (Ganache's own
    // default is the start time).
    chain: { chainId: opts.chainId ?? CHAIN_ID, networkId: opts.chainId ?? CHAIN_ID, hardfork: "shanghai" },
    wallet: {
      mnemonic: DEV_MNEMONIC,
      totalAccounts: opts.accounts ?? DEFAULT_ACCOUNTS,
      defaultBalance: opts.balance ?? DEFAULT_BALANCE_ETH,
    },
    ...(opts.blockTime != null ? { miner: { blockTime: opts.blockTime } } : {}),
    logging: { quiet: true },
    ...(opts.ganache ?? {}),
  };
}

// Ganache runs in a child node process (this very file, see the bottom), not in the test
// process: like medledger it is then a separate server over real HTTP, it gets its own core, and
// it avoids Ganache's pool races with a same-process client (trufflesuite/ganache#3794).
const GANACHE_CHILD_FLAG = "--ganache-child";

async function startGanache(opts) {
  return spawnListening(
    "ganache",
    process.execPath,
    [fileURLToPath(import.meta.url), GANACHE_CHILD_FLAG, JSON.stringify(ganacheOptions(opts))],
    { cwd: repoRoot },
  );
}

async function runGanacheChild(optionsJson) {
  const { default: ganache } = await import("ganache");
  const server = ganache.server(JSON.parse(optionsJson));
  await server.listen(0, "127.0.0.1");
  process.stdout.write(`Listening on 127.0.0.1:${server.address().port}\n`);
  const shutdown = () => {
    server.close().finally(() => process.exit(0));
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
  // The parent holds our stdin open; when it goes away, so do we.
  process.stdin.on("end", shutdown);
  process.stdin.resume();
}

/**
 * Starts a fresh chain of `kind` ("medledger" | "ganache").
 * opts: { chainId, accounts, balance (ETH), blockTime (s), args (extra medledger flags),
 *         ganache (extra ganache options) }.
 * Returns { kind, url, provider, wallets, stop() }.
 */
export async function startChain(kind, opts = {}) {
  let backend;
  const chainId = opts.chainId ?? CHAIN_ID;
  if (kind === "medledger") backend = await startMedledger(opts);
  else if (kind === "ganache") backend = await startGanache(opts);
  else throw new Error(`unknown chain kind ${kind}; expected one of ${ALL_BACKENDS.join(", ")}`);

  const provider = makeProvider(backend.url, chainId);
  const wallets = devPrivateKeys(opts.accounts ?? DEFAULT_ACCOUNTS).map((k) => new Wallet(k, provider));
  let stopped = false;
  return {
    kind,
    url: backend.url,
    provider,
    wallets,
    async stop() {
      if (stopped) return;
      stopped = true;
      provider.destroy();
      await backend.close();
    },
  };
}

const compileCache = new Map();

/**
 * Compiles one Solidity source (solc-js, evmVersion shanghai, optimizer on) and returns
 * { abi, bytecode, deployedBytecode } of the contract `name`, or of the last contract in the
 * source.
 */
export function compile(source, name) {
  const cacheKey = `${name ?? ""}\0${source}`;
  if (compileCache.has(cacheKey)) return compileCache.get(cacheKey);
  const input = {
    language: "Solidity",
    sources: { "Test.sol": { content: source } },
    settings: {
      evmVersion: "shanghai",
      optimizer: { enabled: true, runs: 200 },
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
    },
  };
  // Loaded on first use: solc-js is large, and the Ganache child process never needs it.
  const solc = createRequire(import.meta.url)("solc");
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  if (errors.length > 0) {
    throw new Error(`solc: ${errors.map((e) => e.formattedMessage ?? e.message).join("\n")}`);
  }
  const contracts = output.contracts?.["Test.sol"] ?? {};
  const names = Object.keys(contracts);
  if (names.length === 0) throw new Error("solc: the source defines no contract");
  // Pick the last contract declared in the source (solc's output order is alphabetical).
  const pick =
    name ??
    names
      .map((n) => ({ n, at: source.search(new RegExp(`\\bcontract\\s+${n}\\b`)) }))
      .sort((a, b) => b.at - a.at)[0].n;
  const c = contracts[pick];
  if (!c) throw new Error(`solc: no contract ${pick} in the source (has ${names.join(", ")})`);
  const result = {
    abi: c.abi,
    bytecode: `0x${c.evm.bytecode.object}`,
    deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
  };
  compileCache.set(cacheKey, result);
  return result;
}

if (process.argv[2] === GANACHE_CHILD_FLAG && process.argv[1] === fileURLToPath(import.meta.url)) {
  await runGanacheChild(process.argv[3]);
}
