// Bring your own wallet, in a real browser (headless Debian Chromium driven by playwright-core):
// every page gets an injected EIP-1193 provider (window.ethereum) whose requests are answered in
// node by a real wallet library, an ethers v6 Wallet on the server's own JSON-RPC, and recorded.
// A wallet doctor enrols through the admin's link; a wallet patient signs up, signs in, shares a
// report (exactly one transaction, to the Records contract, at the gas price the page named,
// and the fee the page then shows is the receipt's), grants the doctor, rejects one transaction
// (nothing is left of it); the doctor opens the report and prescribes, each step logged by the
// doctor's wallet; the patient sees the opening in the access log and revokes. The account page
// adds the chain to the wallet, and the chain's JSON-RPC admits the app's origin.
//
//   node --test --test-concurrency=1 tests/browser/
//
// Needs /usr/bin/chromium (scripts/browser-deps installs it) and target/debug/medledger (or
// MEDLEDGER_BIN). BROWSER_HEADED=1 shows the browser; SERVER_LOG=1 shows the server's output.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { ethers } from "ethers";
import { chromium } from "playwright-core";
import { startServer } from "./server.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ADMIN_PASSWORD = "browser-admin-password-1";
const CHAIN_ID = 1337n;
const REPORT = {
  name: "ecg.txt",
  mimeType: "text/plain",
  buffer: Buffer.from("ECG 12 March: sinus rhythm, 64 bpm, QTc 410 ms\n"),
};

let server;
let browser;
let chain;
const contexts = [];
const problems = [];

/**
 * A browser context whose pages see `window.ethereum`, answered by `wallet` (an ethers Wallet):
 * returns { context, calls, wallet, options }, where `calls` records every request and
 * `options.reject` makes the next transactions refused as a user would refuse them.
 */
async function walletContext(wallet) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  context.setDefaultTimeout(20_000);
  context.setDefaultNavigationTimeout(30_000);
  contexts.push(context);
  const calls = [];
  const options = { reject: false };
  const answer = async (method, params) => {
    switch (method) {
      case "eth_requestAccounts":
      case "eth_accounts":
        return [wallet.address];
      case "eth_chainId":
        return "0x" + CHAIN_ID.toString(16);
      case "personal_sign": {
        const [data, address] = params;
        assert.equal(address.toLowerCase(), wallet.address.toLowerCase(), "personal_sign names the wallet's account");
        return wallet.signMessage(ethers.getBytes(data));
      }
      case "eth_sendTransaction": {
        if (options.reject) throw Object.assign(new Error("User rejected the request."), { code: 4001 });
        const [tx] = params;
        assert.equal(tx.from.toLowerCase(), wallet.address.toLowerCase(), "the transaction is from the wallet's account");
        const sent = await wallet.sendTransaction({
          to: tx.to,
          data: tx.data,
          gasLimit: BigInt(tx.gas),
          gasPrice: BigInt(tx.gasPrice),
          type: 0,
        });
        return sent.hash;
      }
      case "wallet_addEthereumChain":
      case "wallet_switchEthereumChain":
        return null;
      default:
        throw Object.assign(new Error(`the test wallet does not answer ${method}`), { code: 4200 });
    }
  };
  await context.exposeFunction("__testWallet", async (method, params) => {
    calls.push({ method, params });
    try {
      return { result: await answer(method, params ?? []) };
    } catch (e) {
      return { error: { code: e.code ?? -32603, message: e.message } };
    }
  });
  await context.addInitScript(() => {
    window.ethereum = {
      async request({ method, params }) {
        const got = await window.__testWallet(method, params ?? []);
        if (got.error) throw Object.assign(new Error(got.error.message), { code: got.error.code });
        return got.result;
      },
      on() {},
      removeListener() {},
    };
  });
  context.on("page", (page) => {
    page.on("console", (msg) => {
      if (msg.type() === "error" && !/Failed to load resource/.test(msg.text())) {
        problems.push(`${page.url()}: console error: ${msg.text()}`);
      }
    });
    page.on("pageerror", (err) => problems.push(`${page.url()}: page error: ${err.message}`));
  });
  return { context, calls, wallet, options, page: await context.newPage() };
}

/** Runs `action` and waits for the main frame's next document; returns its response. */
async function navigation(page, action, { status = 200 } = {}) {
  const final = page.waitForResponse(
    (r) => r.request().isNavigationRequest() && r.frame() === page.mainFrame() && (r.status() < 300 || r.status() >= 400),
    { timeout: 30_000 },
  );
  final.catch(() => {});
  await action();
  const response = await final;
  await page.waitForURL((u) => u.href === response.url(), { waitUntil: "load" });
  if (status !== null) {
    assert.equal(response.status(), status, `${response.request().method()} ${response.url()}: status`);
  }
  return response;
}

const visit = (page, path, opts) => navigation(page, () => page.goto(server.url + path), opts);
const button = (scope, name) => scope.getByRole("button", { name, exact: true });
const pathOf = (page) => new URL(page.url()).pathname;
const sent = (calls) => calls.filter((c) => c.method === "eth_sendTransaction");

/**
 * On the wallet page: confirms in the wallet and waits for the page after, confirming again
 * while that page, showing what is new, first logs its view; the first transaction's box.
 */
async function confirmInWallet(page) {
  const confirm = async () => {
    await page.getByRole("heading", { name: "Confirm in your wallet", level: 1 }).waitFor();
    try {
      return await navigation(page, () => button(page, "Confirm in my wallet").click(), { status: null });
    } catch (e) {
      const said = await page.locator("[data-wallet-status]").innerText().catch(() => "");
      throw new Error(`${page.url()}: confirming did not go on (${e.message}); the page says: ${said}`);
    }
  };
  let response = await confirm();
  const first = new URL(page.url()).searchParams.get("tx");
  while (response.status() === 202) response = await confirm();
  assert.equal(response.status(), 200, `${page.url()}: status`);
  const box = await transactionBox(page);
  return first && first !== box.hash ? { ...box, hash: first } : box;
}

/** The transaction box after a write: its hash and the fee it shows, in wei. */
async function transactionBox(page) {
  const box = page.getByRole("status", { name: "Transaction" });
  await box.waitFor().catch(async (e) => {
    throw new Error(`${page.url()}: no transaction box (${e.message}); the page says:\n${await page.locator("main").innerText()}`);
  });
  const text = await box.innerText();
  assert.match(text, /Transaction confirmed/, `${page.url()}: ${text}`);
  const hash = (await box.locator('a[href^="/explorer/tx/"]').getAttribute("href")).slice("/explorer/tx/".length);
  const fee = BigInt(text.match(/\((\d+) wei at/)[1]);
  return { hash, fee };
}

/** A page that logs a read first: through the wallet page if it comes, then the page again. */
async function visitThroughWallet(page, path) {
  const response = await visit(page, path, { status: null });
  if (response.status() === 202) await confirmInWallet(page);
  assert.equal(pathOf(page), path.split("?")[0]);
}

describe("wallets in a browser", { timeout: 600_000 }, () => {
  before(async () => {
    server = await startServer({ adminPassword: ADMIN_PASSWORD });
    assert.ok(server.rpcUrl, `the server prints its JSON-RPC URL:\n${server.output()}`);
    assert.ok(server.contracts, `the server prints its contracts:\n${server.output()}`);
    // No cache: each transaction asks the node for its nonce afresh (ethers caches answers for 250 ms).
    chain = new ethers.JsonRpcProvider(server.rpcUrl, Number(CHAIN_ID), { staticNetwork: true, cacheTimeout: -1 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: !process.env.BROWSER_HEADED,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close().catch(() => {});
    chain?.destroy();
    await server?.close();
  });

  it("a wallet patient and a wallet doctor do the story from their own wallets", async () => {
    // The admin (custodial) adds a hospital and invites a doctor, over the REST API.
    const api = async (method, path, token, body) => {
      const r = await fetch(server.url + path, {
        method,
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: r.status, body: await r.json().catch(() => null) };
    };
    const login = await api("POST", "/api/v1/auth/login", null, { username: "admin", password: ADMIN_PASSWORD });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    const admin = login.body.token;
    const hospital = await api("POST", "/api/v1/hospitals", admin, { name: "Harbour Clinic", city: "Porto", specialties: "cardiology" });
    assert.equal(hospital.status, 201, JSON.stringify(hospital.body));
    const invite = await api("POST", "/api/v1/doctors", admin, {
      name: "Dr Wallet", specialty: "Cardiology", licence_id: "LIC-W1", hospital_id: hospital.body.id,
    });
    assert.equal(invite.status, 201, JSON.stringify(invite.body));

    // The doctor enrols with their wallet through the link.
    const doctor = await walletContext(ethers.Wallet.createRandom(chain));
    const dpage = doctor.page;
    await visit(dpage, new URL(invite.body.enrolment_url).pathname);
    await dpage.getByLabel("User name", { exact: true }).fill("dr.wallet");
    await navigation(dpage, () => button(dpage, "Enrol with my wallet").click());
    assert.deepEqual(
      doctor.calls.map((c) => c.method),
      ["eth_requestAccounts", "personal_sign", "personal_sign", "eth_requestAccounts", "eth_chainId", "eth_sendTransaction"],
      "enrolling: the account, two signatures (sign-in, key), then one transaction",
    );
    assert.equal(sent(doctor.calls)[0].params[0].to.toLowerCase(), server.contracts.registry.toLowerCase(), "the enrolment goes to the Registry");
    assert.match(await dpage.locator("header").innerText(), /dr\.wallet \(doctor, own wallet\)/);

    // The patient signs up with their wallet.
    const patient = await walletContext(ethers.Wallet.createRandom(chain));
    const page = patient.page;
    page.on("dialog", (d) => d.accept());
    await visit(page, "/signup");
    await page.getByLabel("User name", { exact: true }).fill("wanda");
    await page.getByLabel("Full name", { exact: true }).fill("Wanda Wallet");
    await page.getByLabel("Date of birth", { exact: true }).fill("1988-05-17");
    await page.getByLabel("Contact (phone or e-mail)", { exact: true }).fill("wanda@example.org");
    await navigation(page, () => button(page, "Sign up with my wallet").click());
    assert.equal(pathOf(page), "/patient");
    await transactionBox(page);
    assert.equal(sent(patient.calls).length, 1, "one transaction: the registration");
    assert.equal(sent(patient.calls)[0].params[0].to.toLowerCase(), server.contracts.registry.toLowerCase());

    // ...logs out, and signs in again with the wallet.
    await navigation(page, () => button(page, "Log out").click());
    await visit(page, "/login");
    await navigation(page, () => button(page, "Sign in with my wallet").click());
    await visit(page, "/patient");
    assert.match(await page.locator("header").innerText(), /wanda \(patient, own wallet\)/);

    // Sharing: exactly one transaction, to the Records contract.
    await visit(page, "/patient/share");
    await page.getByLabel("File", { exact: true }).setInputFiles(REPORT);
    await page.getByLabel("Title", { exact: true }).fill("ECG March");
    await page.getByLabel("Kind", { exact: true }).selectOption({ label: "Report" });
    const before = sent(patient.calls).length;
    await navigation(page, () => button(page, "Share").click(), { status: 202 });
    const wallet = await page.locator("main").innerText();
    assert.match(wallet, /the Records contract/, wallet);
    const shared = await confirmInWallet(page);
    const sharing = sent(patient.calls).slice(before);
    assert.equal(sharing.length, 1, "sharing asks the wallet for exactly one transaction");
    const request = sharing[0].params[0];
    assert.equal(request.to.toLowerCase(), server.contracts.records.toLowerCase(), "to the Records contract");
    // The fee: the wallet was asked to pay one gas price, the receipt charges exactly that per
    // gas used, and the page shows what the receipt charged.
    const receipt = await chain.getTransactionReceipt(shared.hash);
    assert.equal(receipt.status, 1);
    assert.equal(receipt.gasPrice, BigInt(request.gasPrice), "charged the gas price the wallet showed");
    assert.ok(receipt.gasUsed <= BigInt(request.gas), "within the gas the wallet showed");
    assert.equal(shared.fee, receipt.gasUsed * receipt.gasPrice, "the page shows the fee the receipt charged");
    const most = BigInt(request.gas) * BigInt(request.gasPrice);
    assert.ok(most - shared.fee <= shared.fee / 20n, `the most the wallet showed (${most} wei) is within 5% of the fee (${shared.fee} wei)`);
    console.log(`# sharing: the wallet showed at most ${most} wei; the receipt charged ${shared.fee} wei (${(Number(most) / Number(shared.fee)).toFixed(4)}x)`);
    await visit(page, "/patient");
    assert.equal(await page.getByRole("row").filter({ hasText: "ECG March" }).count(), 1, "the report is listed");

    // A transaction the patient rejects in the wallet: nothing of it is left.
    patient.options.reject = true;
    await visit(page, "/patient/share");
    await page.getByLabel("File", { exact: true }).setInputFiles({ ...REPORT, name: "rejected.txt" });
    await page.getByLabel("Title", { exact: true }).fill("Rejected scan");
    await page.getByLabel("Kind", { exact: true }).selectOption({ label: "Report" });
    await navigation(page, () => button(page, "Share").click(), { status: 202 });
    await button(page, "Confirm in my wallet").click();
    await page.getByText("You rejected the transaction in your wallet: nothing was changed.").waitFor();
    patient.options.reject = false;
    await visit(page, "/patient");
    assert.equal(await page.getByRole("row").filter({ hasText: "Rejected scan" }).count(), 0, "the rejected report is not kept");

    // The patient grants the doctor.
    await visit(page, "/patient/sharing");
    await page.getByLabel("To", { exact: true }).selectOption({ label: "Dr Wallet (Cardiology)" });
    await navigation(page, () => button(page, "Give access").click(), { status: 202 });
    await confirmInWallet(page);
    assert.equal(await page.getByRole("row").filter({ has: button(page, "Revoke") }).count(), 1, "the grant is listed");

    // The doctor opens the report (the views and the opening logged by the doctor's wallet)...
    await visitThroughWallet(dpage, "/doctor");
    const link = dpage.getByRole("row").filter({ hasText: "Wanda Wallet" }).getByRole("link", { name: "Wanda Wallet" });
    const patientPage = await link.getAttribute("href");
    await visitThroughWallet(dpage, patientPage);
    const row = dpage.getByRole("row").filter({ hasText: "ECG March" });
    await navigation(dpage, () => row.getByRole("button", { name: "Open" }).click(), { status: 202 });
    const opening = await confirmInWallet(dpage);
    assert.equal(sent(doctor.calls).at(-1).params[0].to.toLowerCase(), server.contracts.consent.toLowerCase(), "the opening is logged in Consent");
    const [download] = await Promise.all([
      dpage.waitForEvent("download"),
      dpage.getByRole("row").filter({ hasText: "ECG March" }).getByRole("button", { name: "Open" }).click(),
    ]);
    assert.ok((await readFile(await download.path())).equals(REPORT.buffer), "the doctor gets the file, byte for byte");

    // ...and prescribes.
    await dpage.getByLabel("Medication 1", { exact: true }).fill("Bisoprolol");
    await dpage.getByLabel("Dose 1", { exact: true }).fill("2.5 mg");
    await navigation(dpage, () => button(dpage, "Prescribe").click(), { status: 202 });
    await confirmInWallet(dpage);

    // The patient sees the prescription and the opening, then revokes.
    await visit(page, "/patient/prescriptions");
    assert.match(await page.locator("main").innerText(), /Bisoprolol/);
    await visit(page, "/patient/access-log");
    const opened = page.getByRole("row").filter({ hasText: "opened ECG March" });
    assert.equal(await opened.count(), 1, "the access log shows the opening");
    assert.equal(await opened.locator(`a[href="/explorer/tx/${opening.hash}"]`).count(), 1, "with the doctor's transaction");
    await visit(page, "/patient/sharing");
    await navigation(page, () => button(page, "Revoke").click(), { status: 202 });
    await confirmInWallet(page);
    assert.ok((await page.locator("main table tbody tr").innerText()).includes("revoked"));

    // The doctor is refused now.
    await visitThroughWallet(dpage, patientPage);
    assert.equal(await dpage.getByRole("row").filter({ hasText: "ECG March" }).count(), 0, "the report is no longer listed");

    // The account page: the mode, and the chain added to the wallet.
    await visit(page, "/account");
    assert.match(await page.locator("main").innerText(), /In your own wallet \(wallet mode\)/);
    assert.equal(await page.getByRole("link", { name: "Download my key (encrypted keystore)" }).count(), 0, "no keystore to download");
    await button(page, "Add the chain to my wallet").click();
    await page.getByText("Your wallet has this chain now.").waitFor();
    const added = patient.calls.filter((c) => c.method === "wallet_addEthereumChain");
    assert.equal(added.length, 1);
    assert.deepEqual(added[0].params[0], {
      chainId: "0x539",
      chainName: "medledger (chain 1337)",
      rpcUrls: [server.rpcUrl],
      nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    });
    // The chain's JSON-RPC admits the app's origin (a wallet or a page script calling it from
    // this site), and no other.
    const preflight = async (origin) =>
      fetch(server.rpcUrl, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
      });
    assert.equal((await preflight(server.url)).headers.get("access-control-allow-origin"), server.url);
    assert.notEqual((await preflight("http://evil.example")).headers.get("access-control-allow-origin"), "http://evil.example");
    const call = await fetch(server.rpcUrl, {
      method: "POST",
      headers: { origin: server.url, "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
    });
    assert.equal(call.headers.get("access-control-allow-origin"), server.url);
    assert.equal((await call.json()).result, "0x539");

    assert.deepEqual(problems, [], "no console or page errors (a CSP violation would be one)");
  });

  it("a custodial patient moves to their wallet from the account page", async () => {
    // Signs up with a password, shares a report, downloads the keystore...
    const custodial = await browser.newContext({ acceptDownloads: true });
    contexts.push(custodial);
    const page = await custodial.newPage();
    await visit(page, "/signup");
    await page.getByLabel("User name", { exact: true }).fill("carl");
    await page.getByLabel("Password", { exact: true }).fill("carl-password-123");
    await page.getByLabel("Password again", { exact: true }).fill("carl-password-123");
    await page.getByLabel("Full name", { exact: true }).fill("Carl Custodial");
    await navigation(page, () => button(page, "Sign up").click());
    await visit(page, "/patient/share");
    await page.getByLabel("File", { exact: true }).setInputFiles(REPORT);
    await page.getByLabel("Title", { exact: true }).fill("Before the move");
    await page.getByLabel("Kind", { exact: true }).selectOption({ label: "Report" });
    await navigation(page, () => button(page, "Share").click());
    await visit(page, "/account");
    assert.match(await page.locator("main").innerText(), /custodial mode/);
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("link", { name: "Download my key (encrypted keystore)" }).click(),
    ]);
    const keystore = await readFile(await download.path(), "utf8");

    // ...imports it into the wallet, and moves.
    const imported = (await ethers.Wallet.fromEncryptedJson(keystore, "carl-password-123")).connect(chain);
    const moving = await walletContext(imported);
    await moving.context.addCookies(await custodial.cookies());
    await visit(moving.page, "/account");
    await navigation(moving.page, () => button(moving.page, "Move my account to my wallet").click());
    assert.equal(pathOf(moving.page), "/account");
    await moving.page.getByText("Your account is in your own wallet now").waitFor();
    assert.match(await moving.page.locator("main").innerText(), /In your own wallet \(wallet mode\)/);

    // What they shared before still opens, now with the wallet's key.
    await visit(moving.page, "/patient");
    const row = moving.page.getByRole("row").filter({ hasText: "Before the move" });
    assert.equal(await row.count(), 1);
    await navigation(moving.page, () => row.getByRole("link", { name: "Before the move" }).click());
    // The old password no longer logs in.
    const refused = await fetch(server.url + "/api/v1/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "carl", password: "carl-password-123" }),
    });
    assert.equal(refused.status, 401);
    assert.deepEqual(problems, [], "no console or page errors");
  });
});
