// Starts the real medledger server for the browser tests: `medledger serve` on a fresh data
// directory, with the embedded chain, every address on loopback port 0, and the admin password
// from MEDLEDGER_ADMIN_PASSWORD. Resolves once it prints "Listening on http://127.0.0.1:PORT".
//
// The binary: $MEDLEDGER_BIN, else $CARGO_TARGET_DIR/debug/medledger, else target/debug/medledger
// (build it with `cargo build -p medledger`). Set SERVER_LOG=1 to see the server's output.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** <repo>/target, or $CARGO_TARGET_DIR. */
export function targetDir() {
  return process.env.CARGO_TARGET_DIR
    ? path.resolve(process.env.CARGO_TARGET_DIR)
    : path.join(repoRoot, "target");
}

/** Path of the medledger binary: $MEDLEDGER_BIN, else <target>/debug/medledger. */
export function medledgerBin() {
  if (process.env.MEDLEDGER_BIN) return path.resolve(process.env.MEDLEDGER_BIN);
  return path.join(targetDir(), "debug", "medledger");
}

const LISTEN_TIMEOUT_MS = 60_000;

// Servers still running; killed if this process exits without stopping them (e.g. a crash).
const live = new Set();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/**
 * Starts `medledger serve` with `extraArgs` and `env` added; returns { url, output(), close() }.
 * Rejects (with the server's stdout and stderr) if it exits early or is not listening in time.
 */
export async function startServer({ adminPassword, maxUploadMib = 1, extraArgs = [] } = {}) {
  const bin = medledgerBin();
  if (!existsSync(bin)) {
    throw new Error(
      `medledger binary not found at ${bin}; build it with \`cargo build -p medledger\` ` +
        `(or point MEDLEDGER_BIN at it)`,
    );
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), "medledger-browser-"));
  const args = [
    "serve",
    "--data-dir", path.join(dir, "data"),
    "--escrow-key", path.join(dir, "escrow.key"),
    "--http-addr", "127.0.0.1:0",
    "--rpc-addr", "127.0.0.1:0",
    "--max-upload-mib", String(maxUploadMib),
    ...extraArgs,
  ];
  const env = { ...process.env, MEDLEDGER_ADMIN_PASSWORD: adminPassword };
  delete env.MEDLEDGER_FUNDER_KEY;
  delete env.MEDLEDGER_ESCROW_KEY_FILE;
  delete env.MEDLEDGER_FAUCET_KEY_FILE;

  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], env, cwd: dir });
  live.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
    if (process.env.SERVER_LOG) process.stderr.write(chunk);
  });
  const exited = new Promise((resolve) =>
    child.once("exit", (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  const output = () => `--- stdout ---\n${stdout}\n--- stderr (tail) ---\n${stderr.slice(-8000)}`;

  const url = await new Promise((resolve, reject) => {
    let settled = false;
    const fail = (why) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${why}\ncommand: ${bin} ${args.join(" ")}\n${output()}`));
    };
    const timer = setTimeout(
      () => fail(`medledger serve did not print "Listening on http://127.0.0.1:PORT" within ${LISTEN_TIMEOUT_MS / 1000} s`),
      LISTEN_TIMEOUT_MS,
    );
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      if (process.env.SERVER_LOG) process.stdout.write(chunk);
      const m = stdout.match(/^Listening on (http:\/\/127\.0\.0\.1:\d+)\s*$/m);
      if (m && !settled) {
        settled = true;
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once("error", (err) => fail(`could not start ${bin}: ${err.message}`));
    exited.then(({ code, signal }) => fail(`medledger serve exited early (code ${code}, signal ${signal})`));
  });

  // What the server printed before listening: its chain's JSON-RPC URL and, on a first start,
  // where the contracts are.
  const rpcUrl = stdout.match(/^Ethereum JSON-RPC \(embedded node, chain id \d+\): (\S+)\s*$/m)?.[1];
  const deployed = stdout.match(/Registry (0x[0-9a-fA-F]{40}), Records (0x[0-9a-fA-F]{40}), Consent (0x[0-9a-fA-F]{40}), Research (0x[0-9a-fA-F]{40})/);
  const contracts = deployed
    ? { registry: deployed[1], records: deployed[2], consent: deployed[3], research: deployed[4] }
    : null;
  return {
    url,
    rpcUrl,
    contracts,
    dir,
    output,
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        // Ctrl-C is its graceful shutdown; SIGKILL if it lingers.
        child.kill("SIGINT");
        const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(killer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
