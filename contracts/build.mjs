// Compiles contracts/src/*.sol with the pinned solc-js and writes contracts/artifacts/<Name>.json.
//
//   node contracts/build.mjs           rebuild the committed artifacts
//   node contracts/build.mjs --check   write nothing; exit 1 if any artifact differs from its sources
//
// The settings below make the output deterministic (no metadata hash), so the committed artifacts
// can be compared byte for byte with a fresh compile.

import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync, unlinkSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const SOLC_VERSION = "0.8.37";
const EVM_VERSION = "shanghai";
const MAX_RUNTIME_SIZE = 24576; // EIP-170
const MAX_INITCODE_SIZE = 49152; // EIP-3860

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const srcDir = path.join(here, "src");
const outDir = path.join(here, "artifacts");
const check = process.argv.includes("--check");

function fail(message) {
  console.error(`contracts: ${message}`);
  process.exit(1);
}

for (const arg of process.argv.slice(2)) {
  if (arg !== "--check") fail(`unknown argument ${arg} (usage: node contracts/build.mjs [--check])`);
}

// --- the compiler ---------------------------------------------------------------------------------

if (!existsSync(path.join(root, "node_modules", "solc", "package.json"))) {
  fail("node_modules/solc is missing: run `npm ci` first");
}
const require = createRequire(path.join(root, "package.json"));
let solc;
try {
  solc = require("solc");
} catch (err) {
  fail(`cannot load solc from node_modules (${err.message}): run \`npm ci\` first`);
}
const loaded = solc.version();
if (loaded.split("+")[0] !== SOLC_VERSION) {
  fail(`solc ${SOLC_VERSION} is required but node_modules has ${loaded}: run \`npm ci\` first`);
}

// --- compile --------------------------------------------------------------------------------------

const files = existsSync(srcDir)
  ? readdirSync(srcDir).filter((f) => f.endsWith(".sol")).sort()
  : [];
if (files.length === 0) fail(`no .sol files in ${path.relative(root, srcDir)}`);

const sources = {};
for (const file of files) {
  sources[`contracts/src/${file}`] = { content: readFileSync(path.join(srcDir, file), "utf8") };
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: EVM_VERSION,
    metadata: { bytecodeHash: "none" },
    outputSelection: {
      "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] },
    },
  },
};

// Every source is handed to the compiler up front; anything else is outside the project.
function findImports(importPath) {
  return { error: `import "${importPath}" is not under contracts/src (contracts are self-contained)` };
}

let output;
try {
  output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
} catch (err) {
  fail(`solc crashed: ${err.message}`);
}

const diagnostics = output.errors ?? [];
const errors = diagnostics.filter((d) => d.severity === "error");
for (const d of diagnostics.filter((d) => d.severity !== "error")) {
  console.warn((d.formattedMessage ?? d.message).trimEnd());
}
if (errors.length > 0) {
  for (const d of errors) console.error((d.formattedMessage ?? d.message).trimEnd());
  fail(`compilation failed with ${errors.length} error(s)`);
}

// --- artifacts ------------------------------------------------------------------------------------

const artifacts = new Map(); // name -> { text, runtime, init }
for (const source of Object.keys(output.contracts ?? {}).sort()) {
  for (const [name, c] of Object.entries(output.contracts[source])) {
    const bytecode = c.evm?.bytecode?.object ?? "";
    // Interfaces and abstract contracts have no bytecode and get no artifact.
    if (bytecode.length === 0) continue;
    if (artifacts.has(name)) fail(`two deployable contracts are named ${name}`);
    if (bytecode.includes("__$")) fail(`${name} needs library linking, which this build does not do`);
    const deployed = c.evm.deployedBytecode.object;
    const artifact = {
      contractName: name,
      abi: c.abi,
      bytecode: `0x${bytecode}`,
      deployedBytecode: `0x${deployed}`,
      compiler: SOLC_VERSION,
      evmVersion: EVM_VERSION,
    };
    artifacts.set(name, {
      text: `${JSON.stringify(artifact, null, 2)}\n`,
      runtime: deployed.length / 2,
      init: bytecode.length / 2,
    });
  }
}

let tooBig = false;
for (const [name, a] of artifacts) {
  const note = a.runtime > MAX_RUNTIME_SIZE || a.init > MAX_INITCODE_SIZE ? "  TOO LARGE" : "";
  console.log(
    `contracts: ${name.padEnd(10)} deployed ${String(a.runtime).padStart(6)} bytes` +
      ` (limit ${MAX_RUNTIME_SIZE}), initcode ${String(a.init).padStart(6)} bytes${note}`,
  );
  if (note) tooBig = true;
}
if (tooBig) fail("a contract exceeds the EIP-170 / EIP-3860 size limit");

const existing = existsSync(outDir)
  ? readdirSync(outDir).filter((f) => f.endsWith(".json")).sort()
  : [];
const stale = existing.filter((f) => !artifacts.has(f.slice(0, -".json".length)));

if (check) {
  const problems = [];
  for (const [name, a] of artifacts) {
    const file = path.join(outDir, `${name}.json`);
    const rel = path.relative(root, file);
    if (!existsSync(file)) problems.push(`${rel}: missing`);
    else if (readFileSync(file, "utf8") !== a.text) problems.push(`${rel}: differs from its sources`);
  }
  for (const f of stale) problems.push(`${path.relative(root, path.join(outDir, f))}: no source contract`);
  if (problems.length > 0) {
    for (const p of problems) console.error(`contracts: ${p}`);
    fail("artifacts are out of date: run `npm run contracts` and commit the result");
  }
  console.log("contracts: artifacts match sources");
} else {
  mkdirSync(outDir, { recursive: true });
  for (const [name, a] of artifacts) {
    const file = path.join(outDir, `${name}.json`);
    const before = existsSync(file) ? readFileSync(file, "utf8") : null;
    if (before !== a.text) writeFileSync(file, a.text);
    console.log(`contracts: ${path.relative(root, file)} ${before === a.text ? "unchanged" : "written"}`);
  }
  for (const f of stale) {
    unlinkSync(path.join(outDir, f));
    console.log(`contracts: removed ${path.relative(root, path.join(outDir, f))} (no source contract)`);
  }
}
