// The paper's whole story, in a real browser (headless Debian Chromium driven by playwright-core),
// through the pages only: the admin adds a hospital and a doctor; a patient signs up and shares a
// report with the doctor; the doctor opens it and writes a prescription; the patient sees the
// prescription and the opening in the access log, then revokes; the doctor is refused. Then the
// explorer showing those transactions, and the refusals: a wrong password, an oversized upload, a
// form post without its CSRF token, a patient editing the URL to another role's pages.
//
// Fields are found by their labels and buttons by their accessible names, so the test also checks
// the pages are labelled. Every page visited is saved as a full-page screenshot under
// target/screenshots/ (desktop 1280x800; a few at a phone's 390x844).
//
//   node --test --test-concurrency=1 tests/browser/
//
// Needs /usr/bin/chromium (scripts/browser-deps installs it) and target/debug/medledger (or
// MEDLEDGER_BIN). BROWSER_HEADED=1 shows the browser; BROWSER_LOG=1 logs its requests;
// SERVER_LOG=1 shows the server's output.

import assert from "node:assert/strict";
import { mkdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium } from "playwright-core";
import { startServer, targetDir } from "./server.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ADMIN_PASSWORD = "browser-admin-password-1";
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
const SHOTS = path.join(targetDir(), "screenshots");

// The story's people and things.
const HOSPITAL = {
  Name: "Riverside General Hospital",
  Address: "1 River Road",
  City: "Lisbon",
  Specialties: "cardiology, diagnostics",
  Services: "imaging, laboratory",
  Contact: "+351 210 000 000",
};
const DOCTOR = {
  username: "dr.house",
  password: "doctor-password-123",
  name: "Dr Gregory House",
  specialty: "Diagnostics",
  licence: "LIC-0042",
};
const PATIENT = {
  username: "alice",
  password: "alice-password-123",
  name: "Alice Example",
  dob: "1990-04-01",
  contact: "alice@example.org",
};
const REPORT = {
  title: "Blood panel March",
  date: "2026-03-10",
  notes: "Tired for two weeks; short of breath on stairs.",
  file: {
    name: "blood-panel.txt",
    mimeType: "text/plain",
    buffer: Buffer.from(
      "Blood panel, 10 March 2026\nHaemoglobin 10.9 g/dL (low)\nFerritin 8 ng/mL (low)\n" +
        "MCV 74 fL (low)\nWhite cells 6.1 x10^9/L\n",
    ),
  },
};
const PRESCRIPTION = {
  medication: "Ferrous sulfate",
  dose: "200 mg",
  frequency: "twice a day",
  duration: "3 months",
  notes: "Take with orange juice, not with tea. Blood test again in 8 weeks.",
};

let server;
let browser;
const contexts = [];
const problems = []; // console errors and page errors (CSP violations show up here)
const story = {}; // what later steps need: transaction hashes, the patient's address, ...
let shotNo = 0;
// Page bugs that do not stop the story: collected, and failed at the end (see "the pages").
const pageBugs = [];
function expectPage(ok, message) {
  if (!ok) pageBugs.push(message);
}

/** A fresh browser context (its own cookies) at the desktop size, or `options`. */
async function newContext(options = { viewport: DESKTOP }) {
  const context = await browser.newContext({ ...options, acceptDownloads: true });
  context.setDefaultTimeout(20_000);
  context.setDefaultNavigationTimeout(30_000);
  contexts.push(context);
  context.on("page", watch);
  return context;
}

async function newPage(options) {
  const context = await newContext(options);
  return context.newPage();
}

function watch(page) {
  page.on("console", (msg) => {
    // Chromium logs every 4xx navigation as "Failed to load resource"; those are expected here.
    if (msg.type() === "error" && !/Failed to load resource/.test(msg.text())) {
      problems.push(`${page.url()}: console error: ${msg.text()}`);
    }
  });
  if (process.env.BROWSER_LOG) {
    page.on("request", (r) => console.error(`  -> ${r.method()} ${r.url()}`));
    page.on("requestfailed", (r) => console.error(`  !! ${r.url()} ${r.failure()?.errorText}`));
    page.on("response", (r) => console.error(`  ${r.request().method()} ${r.url()} ${r.status()} ${r.headers().location ?? ""}`));
  }
  page.on("pageerror", (err) => problems.push(`${page.url()}: page error: ${err.message}`));
}

/** Saves a full-page screenshot as target/screenshots/NN-name.png. */
async function shot(page, name) {
  shotNo += 1;
  const file = path.join(SHOTS, `${String(shotNo).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  // A full-page screenshot resizes the view for a moment; with a number input focused, Chromium
  // then swallows the next click (the Share button did nothing). Leaving the field avoids that.
  await page.evaluate(() => document.activeElement?.blur());
  return file;
}

function checkHeaders(response) {
  const headers = response.headers();
  const csp = headers["content-security-policy"] ?? "";
  assert.match(csp, /frame-ancestors 'none'/, `${response.url()}: content-security-policy ${JSON.stringify(csp)}`);
  assert.match(headers["content-type"] ?? "", /^text\/html/, `${response.url()}: content-type`);
}

/**
 * Runs `action` (a click, a goto, ...) and waits for the main frame's next document: the response
 * after any redirects, checked for the pages' security headers. Returns that response.
 */
async function navigation(page, action, { status = 200 } = {}) {
  const final = page.waitForResponse(
    (r) =>
      r.request().isNavigationRequest() &&
      r.frame() === page.mainFrame() &&
      (r.status() < 300 || r.status() >= 400),
    { timeout: 30_000 },
  );
  final.catch(() => {}); // reported below, after `action`
  await action();
  const response = await final;
  // The response's headers arrive before the page commits to the new document: wait for that.
  await page.waitForURL((u) => u.href === response.url(), { waitUntil: "load" });
  assert.equal(response.status(), status, `${response.request().method()} ${response.url()}: status`);
  checkHeaders(response);
  return response;
}

async function visit(page, urlPath, opts) {
  return navigation(page, () => page.goto(server.url + urlPath), opts);
}

function pathOf(page) {
  const u = new URL(page.url());
  return u.pathname;
}

function field(page, label) {
  return page.getByLabel(label, { exact: true });
}

async function fill(page, values) {
  for (const [label, value] of Object.entries(values)) await field(page, label).fill(value);
}

function button(page, name) {
  return page.getByRole("button", { name, exact: true });
}

/** The transaction confirmation box: checks it and returns the transaction's hash. */
async function confirmation(page) {
  const box = page.getByRole("status", { name: "Transaction" });
  await box.waitFor();
  assert.equal(
    await box.getByRole("heading", { level: 2 }).innerText(),
    "Transaction confirmed",
    `${page.url()}: the transaction box's heading`,
  );
  const text = await box.innerText();
  for (const term of ["Hash", "Block", "Gas used", "Fee"]) {
    assert.ok(text.includes(term), `${page.url()}: the transaction box shows "${term}":\n${text}`);
  }
  const txLink = box.locator('a[href^="/explorer/tx/"]');
  const href = await txLink.getAttribute("href");
  const hash = href.slice("/explorer/tx/".length);
  assert.match(hash, /^0x[0-9a-f]{64}$/, "the box links to the transaction");
  assert.ok(text.includes(hash), "the box shows the hash");
  assert.equal(await box.locator('a[href^="/explorer/block/"]').count(), 1, "the box links to the block");
  assert.match(text, /Gas used\s*\d+/, "gas used is a number");
  assert.match(text, /ETH|ether|wei/i, "the fee is shown in ether or wei");
  return hash;
}

async function logIn(page, username, password) {
  await fill(page, { "User name": username, Password: password });
  return navigation(page, () => button(page, "Log in").click());
}

async function logOut(page) {
  await navigation(page, () => button(page, "Log out").click());
  assert.equal(await button(page, "Log out").count(), 0, "logged out: no Log out button");
}

async function sessionCookies(context) {
  return (await context.cookies()).filter((c) => /session/i.test(c.name) && c.value !== "");
}

/** Signs up a patient through /signup; leaves `page` on /patient, logged in. */
async function signUp(page, p) {
  await visit(page, "/signup");
  await fill(page, {
    "User name": p.username,
    Password: p.password,
    "Password again": p.password,
    "Full name": p.name,
    "Date of birth": p.dob,
    "Contact (phone or e-mail)": p.contact,
  });
  await navigation(page, () => button(page, "Sign up").click());
  assert.equal(pathOf(page), "/patient", "after signing up: /patient");
}

/** The document's width is that of the viewport: nothing sticks out sideways on a phone. */
async function assertNoSidewaysScroll(page) {
  const { scroll, inner } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    inner: window.innerWidth,
  }));
  assert.ok(scroll <= inner + 1, `${page.url()}: the page is ${scroll} px wide on a ${inner} px screen`);
}

describe("medledger in a browser", { timeout: 600_000 }, () => {
  before(async () => {
    await rm(SHOTS, { recursive: true, force: true });
    await mkdir(SHOTS, { recursive: true });
    server = await startServer({ adminPassword: ADMIN_PASSWORD, maxUploadMib: 1 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: !process.env.BROWSER_HEADED,
      args: [
        ...(process.env.BROWSER_HEADED ? [] : ["--headless"]),
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close().catch(() => {});
    await server?.close();
  });

  // ---- The story --------------------------------------------------------------------------

  describe("the story", () => {
    let failed = null;
    /** A story step: skipped once an earlier one failed (it would only fail for that reason). */
    const step = (name, fn) =>
      it(name, async (t) => {
        if (failed) return t.skip(`an earlier step failed: ${failed}`);
        try {
          await fn(t);
        } catch (e) {
          failed = name;
          throw e;
        }
      });

    step("the admin adds a hospital and a doctor", async () => {
      const page = await newPage();
      story.admin = page;
      await visit(page, "/login");
      await shot(page, "login");
      // By keyboard: the user name field, Tab to the password, Enter submits.
      await field(page, "User name").focus();
      await page.keyboard.type("admin");
      await page.keyboard.press("Tab");
      assert.equal(await page.evaluate(() => document.activeElement?.id), await field(page, "Password").getAttribute("id"), "Tab goes from the user name to the password");
      await page.keyboard.type(ADMIN_PASSWORD);
      await navigation(page, () => page.keyboard.press("Enter"));
      assert.equal(pathOf(page), "/admin", "the admin lands on the dashboard");
      await page.getByRole("heading", { name: "Dashboard", level: 1 }).waitFor();
      await shot(page, "admin-dashboard");

      // The session cookie: HttpOnly and SameSite, so scripts and other sites cannot use it.
      const cookies = await page.context().cookies();
      const sessions = cookies.filter((c) => /session/i.test(c.name));
      assert.equal(sessions.length, 1, `one session cookie: ${JSON.stringify(cookies)}`);
      for (const c of cookies) {
        assert.equal(c.httpOnly, true, `cookie ${c.name} is HttpOnly`);
        assert.ok(["Strict", "Lax"].includes(c.sameSite), `cookie ${c.name} is SameSite (${c.sameSite})`);
      }
      assert.equal(await page.evaluate(() => document.cookie), "", "scripts see no cookie");

      await navigation(page, () => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Hospitals" }).click());
      assert.equal(pathOf(page), "/admin/hospitals");
      await shot(page, "admin-hospitals-empty");
      await fill(page, HOSPITAL);
      await navigation(page, () => button(page, "Add hospital").click());
      story.addHospitalTx = await confirmation(page);
      const row = page.getByRole("row").filter({ hasText: HOSPITAL.Name });
      assert.equal(await row.count(), 1, "the hospital is listed");
      assert.ok((await row.innerText()).includes(HOSPITAL.City), "with its city");
      await shot(page, "admin-hospital-added");

      await navigation(page, () => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Doctors" }).click());
      assert.equal(pathOf(page), "/admin/doctors");
      // The admin enters the doctor in the directory; the doctor's login is theirs to choose.
      assert.equal(await page.getByLabel("Initial password").count(), 0, "the admin sets no password");
      await fill(page, {
        Name: DOCTOR.name,
        Specialty: DOCTOR.specialty,
        "Licence id": DOCTOR.licence,
      });
      await field(page, "Hospital").selectOption({ label: `${HOSPITAL.Name}, ${HOSPITAL.City}` });
      await shot(page, "admin-doctor-form");
      await navigation(page, () => button(page, "Add doctor").click());
      story.addDoctorTx = await confirmation(page);
      const shown = (await page.locator("#enrolment-link").innerText()).trim();
      assert.match(shown, /^http:\/\/[^/]+\/enrol\/[0-9a-f]{64}$/, "a one-time enrolment link is shown, whole");
      assert.ok(shown.startsWith(server.url + "/enrol/"), `the link is on the server's public URL: ${shown}`);
      story.enrolmentLink = new URL(shown).pathname;
      const waiting = page.getByRole("row").filter({ hasText: DOCTOR.name });
      assert.equal(await waiting.count(), 1, "the doctor waits for enrolment");
      assert.ok((await waiting.innerText()).includes(HOSPITAL.Name), "at their hospital");
      await shot(page, "admin-doctor-invited");

      await logOut(page);
      assert.deepEqual(await sessionCookies(page.context()), [], "no session after logging out");
      await shot(page, "logged-out");
    });

    step("the doctor enrols through the link, choosing their own login", async () => {
      const page = await newPage();
      await visit(page, story.enrolmentLink);
      await page.getByRole("heading", { name: "Enrol as a doctor", level: 1 }).waitFor();
      assert.ok((await page.locator("main").innerText()).includes(DOCTOR.name), "the link names the doctor");
      await fill(page, { "User name": DOCTOR.username, Password: DOCTOR.password, "Password again": DOCTOR.password });
      await shot(page, "doctor-enrol");
      await navigation(page, () => button(page, "Enrol").click());
      assert.equal(pathOf(page), "/login", "enrolled: on to the login page");
      await page.getByRole("status").filter({ hasText: "You are enrolled" }).waitFor();
      const doctors = await (await page.request.get(`${server.url}/api/v1/doctors`)).json();
      const entry = doctors.doctors.find((d) => d.name === DOCTOR.name);
      assert.ok(entry, "the doctor is in the directory");
      for (const [key, value] of Object.entries({ username: DOCTOR.username, specialty: DOCTOR.specialty, licence_id: DOCTOR.licence, active: true })) {
        assert.equal(entry[key], value, `the directory entry's ${key}`);
      }
      // The link works once.
      await visit(page, story.enrolmentLink);
      assert.match(await page.getByRole("alert").innerText(), /already used/);
      await page.context().close();
    });

    step("a patient signs up and shares a report with the doctor", async () => {
      const page = await newPage();
      story.patient = page;
      await visit(page, "/signup");
      await shot(page, "signup");
      await signUp(page, PATIENT);
      await confirmation(page);
      assert.ok((await page.locator("header").innerText()).includes(PATIENT.username), "logged in: the header names the patient");
      await shot(page, "patient-signed-up");
      const cookies = await sessionCookies(page.context());
      assert.equal(cookies.length, 1, "signing up logs in");
      assert.equal(cookies[0].httpOnly, true, "the session cookie is HttpOnly");
      assert.ok(["Strict", "Lax"].includes(cookies[0].sameSite), `the session cookie is SameSite (${cookies[0].sameSite})`);

      await navigation(page, () => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Share a report" }).click());
      assert.equal(pathOf(page), "/patient/share");
      await field(page, "File").setInputFiles(REPORT.file);
      await fill(page, { Title: REPORT.title, "Date of the examination": REPORT.date, "Symptoms or notes": REPORT.notes });
      await field(page, "Kind").selectOption({ label: "Report" });
      const doctors = field(page, "Doctors");
      assert.equal(await doctors.evaluate((s) => s.multiple), true, "Doctors is a multi-select");
      await doctors.selectOption({ label: `${DOCTOR.name} — ${DOCTOR.specialty}` });
      assert.ok(
        (await field(page, "Or every doctor of a hospital").locator("option").allInnerTexts()).some((o) => o.includes(HOSPITAL.Name)),
        "the hospital can be chosen instead",
      );
      await field(page, "Purpose").selectOption({ label: "Treatment" });
      await fill(page, { "Days until the access ends": "30" });
      await shot(page, "patient-share-form");
      await navigation(page, () => button(page, "Share").click());
      assert.equal(pathOf(page), "/patient", "after sharing: back on /patient");
      await confirmation(page);
      const row = page.getByRole("row").filter({ hasText: REPORT.title });
      assert.equal(await row.count(), 1, "the report is listed");
      const rowText = await row.innerText();
      assert.ok(rowText.includes("✓ verified"), `the report is verified: ${rowText}`);
      assert.ok(rowText.includes(REPORT.date), "with its date");
      assert.equal(await row.locator('a[href^="/explorer/block/"]').count(), 1, "with a link to its block");
      const anchorHref = await row.locator('a[href^="/explorer/tx/"]').getAttribute("href");
      story.anchorTx = anchorHref.slice("/explorer/tx/".length);
      await shot(page, "patient-report-listed");

      // The report's own page: its anchor and integrity.
      await navigation(page, () => row.getByRole("link", { name: REPORT.title }).click());
      await page.getByRole("heading", { name: REPORT.title, level: 1 }).waitFor();
      const details = await page.locator("main").innerText();
      assert.ok(details.includes("the stored file matches its on-chain hash"), `the record page shows its integrity:\n${details}`);
      await shot(page, "patient-record");

      await navigation(page, () => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Sharing" }).click());
      await shot(page, "patient-sharing");
      const grant = page.getByRole("row").filter({ has: button(page, "Revoke") });
      assert.equal(await grant.count(), 1, "the doctor's access is listed on Sharing");
      const grantText = await grant.innerText();
      assert.ok(grantText.includes("active"), "and active");
      // "Only these kinds": each checkbox sits beside its label, not stretched across the form.
      for (const kind of ["reports", "prescriptions", "other"]) {
        const box = await page.getByRole("checkbox", { name: kind, exact: true }).boundingBox();
        const label = await page.locator("label").filter({ hasText: new RegExp(`^\\s*${kind}\\s*$`) }).boundingBox();
        expectPage(
          box.width <= 40 && label.height < 2 * Math.max(box.height, 24),
          `/patient/sharing: the "${kind}" checkbox is ${Math.round(box.width)} px wide and its label ${Math.round(label.height)} px tall: ` +
            "the checkbox is stretched across the form (app.css gives every input width:100%) and its text wraps below it",
        );
      }
      expectPage(grantText.includes(DOCTOR.name), `/patient/sharing: the grant's "Who" names the doctor (${DOCTOR.name}); it shows: ${grantText.split("\t")[0]}`);
    });

    step("the doctor opens the report and writes a prescription", async () => {
      const page = await newPage();
      story.doctor = page;
      await visit(page, "/login");
      await logIn(page, DOCTOR.username, DOCTOR.password);
      assert.equal(pathOf(page), "/doctor", "the doctor lands on My patients");
      await page.getByRole("heading", { name: "My patients", level: 1 }).waitFor();
      await shot(page, "doctor-patients");
      const link = page.getByRole("row").filter({ hasText: PATIENT.name }).getByRole("link", { name: PATIENT.name });
      assert.match(await link.getAttribute("href"), /^\/doctor\/patients\/0x[0-9a-fA-F]{40}$/);
      await navigation(page, () => link.click());
      story.patientPage = pathOf(page);
      await page.getByRole("heading", { name: PATIENT.name, level: 1 }).waitFor();
      const details = await page.locator("main").innerText();
      assert.ok(details.includes(PATIENT.dob), "the doctor sees who the patient is");
      assert.ok(!details.includes(PATIENT.contact), "a grant of one report does not hand over the patient's contact");
      await shot(page, "doctor-patient");

      // A second tab on the same page, left as it is: after the revocation its "Open" is refused.
      story.staleTab = await page.context().newPage();
      await visit(story.staleTab, story.patientPage);

      const report = page.getByRole("row").filter({ hasText: REPORT.title });
      assert.equal(await report.count(), 1, "the shared report is listed");
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        report.getByRole("button", { name: "Open" }).click(),
      ]);
      const bytes = await readFile(await download.path());
      assert.ok(bytes.equals(REPORT.file.buffer), "the opened file is the uploaded one, byte for byte");
      assert.ok(download.suggestedFilename().length > 0, "the download has a file name");

      await fill(page, {
        "Medication 1": PRESCRIPTION.medication,
        "Dose 1": PRESCRIPTION.dose,
        "Frequency 1": PRESCRIPTION.frequency,
        "Duration 1": PRESCRIPTION.duration,
        Notes: PRESCRIPTION.notes,
      });
      await shot(page, "doctor-prescription-form");
      await navigation(page, () => button(page, "Prescribe").click());
      story.prescriptionTx = await confirmation(page);
      await shot(page, "doctor-prescribed");

      await navigation(page, () => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "My openings" }).click());
      // The doctor's own log names no titles (they are the patient's to read), only what was done.
      const opening = page.getByRole("row").filter({ hasText: "opened a record" });
      assert.ok((await opening.count()) >= 1, "the doctor's own log lists the opening");
      assert.equal(await page.getByRole("row").filter({ hasText: REPORT.title }).count(), 0, "without the report's title");
      await shot(page, "doctor-openings");
    });

    step("the patient, on a phone, sees the prescription and the opening, then revokes", async () => {
      // Anonymous /patient goes to the login, which returns to /patient.
      const page = await newPage(PHONE);
      story.patientPhone = page;
      page.on("dialog", (d) => d.accept());
      await visit(page, "/patient");
      assert.equal(pathOf(page), "/login", "an anonymous visit to /patient goes to the login");
      assert.equal(new URL(page.url()).searchParams.get("next"), "/patient", "and comes back to /patient");
      await assertNoSidewaysScroll(page);
      await shot(page, "phone-login");
      await logIn(page, PATIENT.username, PATIENT.password);
      assert.equal(pathOf(page), "/patient", "after logging in: back on /patient");
      assert.equal(await page.getByRole("row").filter({ hasText: REPORT.title }).count(), 1);
      await assertNoSidewaysScroll(page);
      await shot(page, "phone-patient-reports");

      await navigation(page, () => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Prescriptions" }).click());
      assert.equal(pathOf(page), "/patient/prescriptions");
      await shot(page, "phone-patient-prescriptions");
      const main = await page.locator("main").innerText();
      for (const s of Object.values(PRESCRIPTION)) assert.ok(main.includes(s), `the prescription shows "${s}":\n${main}`);
      expectPage(main.includes(DOCTOR.name), `/patient/prescriptions: the prescription names its doctor (${DOCTOR.name}):\n${main}`);
      assert.ok(
        (await page.locator("main").locator(`a[href="/explorer/tx/${story.prescriptionTx}"]`).count()) === 1,
        "with a link to its transaction",
      );
      await assertNoSidewaysScroll(page);

      await navigation(page, () => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Access log" }).click());
      assert.equal(pathOf(page), "/patient/access-log");
      await shot(page, "phone-patient-access-log");
      const opening = page.getByRole("row").filter({ hasText: `opened ${REPORT.title}` });
      assert.equal(await opening.count(), 1, "the access log shows the report's opening");
      const viewed = page.getByRole("row").filter({ hasText: "viewed the" });
      assert.ok((await viewed.count()) >= 1, "and the views of the patient's details before it");
      const openingText = await opening.innerText();
      expectPage(openingText.includes(DOCTOR.name), `/patient/access-log: the opening names the doctor who opened it (${DOCTOR.name}): ${openingText}`);
      const txHref = await opening.locator('a[href^="/explorer/tx/"]').getAttribute("href");
      story.logAccessTx = txHref.slice("/explorer/tx/".length);
      assert.match(story.logAccessTx, /^0x[0-9a-f]{64}$/);
      await assertNoSidewaysScroll(page);

      await navigation(page, () => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Sharing" }).click());
      const grant = page.getByRole("row").filter({ has: button(page, "Revoke") });
      assert.equal(await grant.count(), 1, "one grant to revoke");
      const revoke = grant.getByRole("button", { name: "Revoke" });
      assert.ok(await grant.locator("form[data-confirm]").count(), "Revoke asks first");
      await shot(page, "phone-patient-sharing");
      await navigation(page, () => revoke.click());
      story.revokeTx = await confirmation(page);
      const rows = page.locator("main table tbody tr");
      assert.equal(await rows.count(), 1, "the grant is still listed");
      assert.ok((await rows.innerText()).includes("revoked"), "the grant shows as revoked");
      assert.equal(await button(page, "Revoke").count(), 0, "and can no longer be revoked");
      await assertNoSidewaysScroll(page);
      await shot(page, "phone-patient-revoked");
    });

    step("the doctor is refused", async () => {
      const page = story.doctor;
      await visit(page, story.patientPage);
      assert.equal(await page.getByRole("row").filter({ hasText: REPORT.title }).count(), 0, "the report is no longer listed");
      await page.getByText("You may not open any record of this patient now").waitFor();
      await shot(page, "doctor-patient-revoked");

      // The tab opened before the revocation still shows "Open": posting it is refused.
      const stale = story.staleTab;
      const open = stale.getByRole("row").filter({ hasText: REPORT.title }).getByRole("button", { name: "Open" });
      let downloaded = false;
      stale.once("download", () => (downloaded = true));
      await navigation(stale, () => open.click(), { status: 403 });
      assert.equal(downloaded, false, "nothing is downloaded");
      await stale.getByRole("heading", { name: "That did not work", level: 1 }).waitFor();
      await shot(stale, "doctor-open-refused");

      await visit(page, "/doctor");
      await shot(page, "doctor-patients-after-revoke");
    });
  });

  // ---- The explorer -----------------------------------------------------------------------

  describe("the explorer", () => {
    it("shows the story's transactions, with their decoded calls", async (t) => {
      if (!story.addHospitalTx) return t.skip("the story did not get as far as its first transaction");
      const page = await newPage();
      await visit(page, "/explorer");
      await shot(page, "explorer");
      await page.getByRole("heading", { name: "Ledger explorer", level: 1 }).waitFor();

      const calls = [
        ["addHospital", story.addHospitalTx],
        ["anchorRecord", story.anchorTx],
        ["anchorPrescription", story.prescriptionTx],
        ["logAccess", story.logAccessTx],
        ["revoke", story.revokeTx],
      ].filter(([, hash]) => hash);
      for (const [name, hash] of calls) {
        await visit(page, `/explorer/tx/${hash}`);
        await shot(page, `explorer-tx-${name}`);
        const main = await page.locator("main").innerText();
        assert.ok(main.includes(hash), `/explorer/tx/${hash} shows its hash`);
        assert.match(main, /success/, `${name}: the transaction succeeded`);
        const call = page.locator("section").filter({ has: page.getByRole("heading", { name: "Call" }) });
        assert.equal(await call.count(), 1, `/explorer/tx/${hash} has a Call section`);
        assert.match(await call.innerText(), new RegExp(`\\b${name}\\b`), `/explorer/tx/${hash} decodes the call ${name}`);
      }

      // From a transaction to its block, and back to the explorer's front page.
      await navigation(page, () => page.locator("main").locator('a[href^="/explorer/block/"]').first().click());
      assert.match(pathOf(page), /^\/explorer\/block\/\d+$/);
      await shot(page, "explorer-block");
      assert.equal(
        await page.locator("main").locator(`a[href="/explorer/tx/${story.revokeTx}"]`).count(),
        1,
        "the block links to the transaction",
      );

      const phone = await newPage(PHONE);
      await visit(phone, "/explorer");
      await assertNoSidewaysScroll(phone);
      await shot(phone, "phone-explorer");
    });
  });

  // ---- Refusals ---------------------------------------------------------------------------

  describe("refusals", () => {
    it("a wrong password: the error next to the form, 401, no session", async () => {
      const page = await newPage();
      await visit(page, "/login");
      await fill(page, { "User name": "admin", Password: "not-the-password" });
      await navigation(page, () => button(page, "Log in").click(), { status: 401 });
      const form = page.locator("form").filter({ has: field(page, "Password") });
      const alert = form.getByRole("alert");
      await alert.waitFor();
      assert.match(await alert.innerText(), /wrong user name or password/i);
      assert.equal(await field(page, "User name").inputValue(), "admin", "the user name is kept");
      assert.equal(await field(page, "Password").inputValue(), "", "the password is not sent back");
      assert.deepEqual(await sessionCookies(page.context()), [], "no session cookie");
      await shot(page, "login-wrong-password");
      await visit(page, "/admin");
      assert.equal(pathOf(page), "/login", "still logged out");
      assert.equal(new URL(page.url()).searchParams.get("next"), "/admin");
      await shot(page, "login-after-wrong-password");
    });

    it("an oversized upload: the error next to the File field, 413, nothing listed", async () => {
      const page = await newPage();
      await signUp(page, { ...PATIENT, username: "bob", name: "Bob Oversize", contact: "bob@example.org" });
      await visit(page, "/patient/share");
      await shot(page, "share-form-bob");
      await field(page, "File").setInputFiles({
        name: "scan.txt",
        mimeType: "text/plain",
        buffer: Buffer.alloc(1024 * 1024 + 256 * 1024, "x"),
      });
      await fill(page, { Title: "Too big scan" });
      await navigation(page, () => button(page, "Share").click(), { status: 413 });
      const file = field(page, "File");
      assert.equal(await file.getAttribute("aria-invalid"), "true", "the File field is marked invalid");
      const describedBy = await file.getAttribute("aria-describedby");
      assert.ok(describedBy, "the File field points at its error");
      const error = page.locator(`[id="${describedBy}"]`);
      assert.match(await error.innerText(), /1 MiB/, "the error names the limit");
      const fieldBox = page.locator(".field").filter({ has: file });
      assert.equal(await fieldBox.locator(`[id="${describedBy}"]`).count(), 1, "the error is next to the File field");
      assert.equal(await field(page, "Title").inputValue(), "Too big scan", "the title is kept");
      await shot(page, "share-too-large");
      await visit(page, "/patient");
      assert.equal(await page.getByRole("row").filter({ hasText: "Too big scan" }).count(), 0, "nothing is listed");
      await page.getByText("You have not shared any report yet").waitFor();
      await shot(page, "share-too-large-nothing-listed");
    });

    it("a form post without its CSRF token is refused and changes nothing", async () => {
      const page = await newPage();
      await visit(page, "/login");
      await logIn(page, "admin", ADMIN_PASSWORD);
      await visit(page, "/admin/hospitals");
      await shot(page, "csrf-hospitals-before");
      const before = await page.locator("main table tbody").innerText();
      // Logged in (the session cookie goes along), but the form's csrf field is missing.
      const response = await page.request.post(`${server.url}/admin/hospitals`, {
        form: { name: "Forged Clinic", address: "", city: "Nowhere", specialties: "", services: "", contact: "" },
        maxRedirects: 0,
      });
      assert.equal(response.status(), 403, "refused");
      // Same with a wrong token.
      const wrong = await page.request.post(`${server.url}/admin/hospitals`, {
        form: { csrf: "0".repeat(64), name: "Forged Clinic", city: "Nowhere" },
        maxRedirects: 0,
      });
      assert.equal(wrong.status(), 403, "a wrong token is refused too");
      // The same through the page: the form, with its csrf field taken out, posted by the browser.
      await visit(page, "/admin/hospitals");
      await page.locator('form[action="/admin/hospitals"] input[name="csrf"]').evaluate((e) => e.remove());
      await fill(page, { ...HOSPITAL, Name: "Forged Clinic" });
      await navigation(page, () => button(page, "Add hospital").click(), { status: 403 });
      await page.getByRole("heading", { name: "That did not work", level: 1 }).waitFor();
      await shot(page, "csrf-refused");
      await visit(page, "/admin/hospitals");
      assert.equal(await page.locator("main table tbody").innerText(), before, "the hospital list is unchanged");
      assert.equal(await page.getByText("Forged Clinic").count(), 0);
      await shot(page, "csrf-refused-list-unchanged");
    });

    it("a patient editing the URL to /admin or /doctor gets a 403 page", async () => {
      const page = await newPage();
      await signUp(page, { ...PATIENT, username: "carol", name: "Carol Curious", contact: "carol@example.org" });
      for (const urlPath of ["/admin", "/admin/hospitals", "/doctor"]) {
        await visit(page, urlPath, { status: 403 });
        await shot(page, `patient-forbidden-${urlPath.slice(1).replaceAll("/", "-")}`);
        assert.equal(pathOf(page), urlPath, "no redirect");
        await page.getByRole("heading", { name: "That did not work", level: 1 }).waitFor();
        await page.getByRole("alert").waitFor();
        assert.equal(await button(page, "Add hospital").count(), 0, "no admin form");
      }
      // The "Go back" link works (it is wired by app.js, not an inline javascript: URL).
      await navigation(page, () => page.getByRole("link", { name: "Go back" }).click(), { status: 403 });
      assert.equal(pathOf(page), "/admin/hospitals");
    });
  });

  describe("the pages", () => {
    it("logged no console or page errors (CSP violations included)", () => {
      assert.deepEqual(problems, []);
    });
    it("showed what they should along the way", () => {
      assert.deepEqual(pageBugs, []);
    });
  });
});
