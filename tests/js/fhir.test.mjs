// A real FHIR client library (npm fhir-kit-client 2) against `medledger serve`: it discovers the
// server (CapabilityStatement, SMART configuration), reads and searches a patient's data with
// their bearer token, follows `next` links to the end, resolves references, runs
// Patient/$everything, and meets OperationOutcomes for what it may not see.
//
// The server: $MEDLEDGER_BIN (scripts/test sets it); the bundle: PyPI carebundle, as
// scripts/fhir-deps installs it.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client, CapabilityTool } from "fhir-kit-client";

import { repoRoot, startServer } from "../browser/server.mjs";

const ADMIN_PASSWORD = "a long admin password for fhir";
const PASSWORD = "a long enough password";

let server;
let token;
let patientId;
let bundle;

async function api(method, route, body, auth) {
  const response = await fetch(server.url + route, {
    method,
    headers: {
      ...(body instanceof FormData ? {} : { "content-type": "application/json" }),
      ...(auth ? { authorization: `Bearer ${auth}` } : {}),
    },
    body: body instanceof FormData ? body : body && JSON.stringify(body),
  });
  const answer = await response.json();
  return { status: response.status, body: answer };
}

function carebundle() {
  const bin = path.join(repoRoot, ".tools/fhir-venv/bin/carebundle");
  assert.ok(existsSync(bin), `${bin} is missing: run scripts/fhir-deps (scripts/test does)`);
  const out = mkdtempSync(path.join(os.tmpdir(), "medledger-fhir-js-"));
  execFileSync(bin, ["generate", "--count", "1", "--seed", "5", "--profile", "ckd_stage3", "--out", out]);
  const [file] = readdirSync(out);
  return readFileSync(path.join(out, file));
}

describe("fhir-kit-client reads medledger's FHIR API", { timeout: 300_000 }, () => {
  before(async () => {
    server = await startServer({ adminPassword: ADMIN_PASSWORD, maxUploadMib: 4 });
    const signup = await api("POST", "/api/v1/patients", {
      username: "kit", password: PASSWORD, name: "Kit Client", date_of_birth: "1970-05-01",
    });
    assert.equal(signup.status, 201, JSON.stringify(signup.body));
    patientId = signup.body.address.slice(2).toLowerCase();
    const login = await api("POST", "/api/v1/auth/login", { username: "kit", password: PASSWORD });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    token = login.body.token;
    bundle = carebundle();
    const form = new FormData();
    form.set("title", "CKD labs");
    form.set("kind", "report");
    form.set("file", new Blob([bundle], { type: "application/fhir+json" }), "labs.json");
    const shared = await api("POST", "/api/v1/records", form, token);
    assert.equal(shared.status, 201, JSON.stringify(shared.body));
  });

  after(async () => {
    await server?.close();
  });

  it("discovers what the server supports", async () => {
    const client = new Client({ baseUrl: `${server.url}/fhir` });
    const cs = await client.capabilityStatement();
    assert.equal(cs.resourceType, "CapabilityStatement");
    assert.equal(cs.fhirVersion, "4.0.1");
    const tool = new CapabilityTool(cs);
    assert.ok(tool.resourceSearch("Observation", "code"));
    assert.ok(tool.resourceSearch("DocumentReference", "patient"));
    assert.ok(!tool.resourceSearch("Observation", "value-quantity"));
  });

  it("searches page by page to the end, and the pages add up to the total", async () => {
    const client = new Client({ baseUrl: `${server.url}/fhir`, bearerToken: token });
    const expected = JSON.parse(bundle).entry.filter((e) => e.resource.resourceType === "Observation").length;
    assert.ok(expected > 10, `the bundle has ${expected} observations`);
    let page = await client.search({ resourceType: "Observation", searchParams: { _count: 7 } });
    assert.equal(page.total, expected);
    const ids = new Set();
    for (let i = 0; page && i < 100; i++) {
      for (const e of page.entry ?? []) ids.add(e.resource.id);
      page = await client.nextPage({ bundle: page });
    }
    assert.equal(ids.size, expected);
  });

  it("reads, resolves references and runs $everything", async () => {
    const client = new Client({ baseUrl: `${server.url}/fhir`, bearerToken: token });
    const patient = await client.read({ resourceType: "Patient", id: patientId });
    assert.equal(patient.name[0].text ?? `${patient.name[0].given?.join(" ")} ${patient.name[0].family}`, "Kit Client");
    const found = await client.search({ resourceType: "Condition", searchParams: { patient: patientId } });
    assert.ok(found.total > 0);
    const condition = found.entry[0].resource;
    const subject = await client.resolve({ reference: condition.subject.reference });
    assert.equal(subject.resourceType, "Patient");
    assert.equal(subject.id, patientId);
    const again = await client.read({ resourceType: "Condition", id: condition.id });
    assert.deepEqual(again, condition);
    const everything = await client.operation({ name: "everything", resourceType: "Patient", id: patientId, method: "GET" });
    const types = new Set(everything.entry.map((e) => e.resource.resourceType));
    for (const t of ["Patient", "DocumentReference", "Observation", "Condition"]) assert.ok(types.has(t), `${t} in $everything`);
  });

  it("meets OperationOutcomes for what it may not see", async () => {
    const anonymous = new Client({ baseUrl: `${server.url}/fhir` });
    await assert.rejects(anonymous.search({ resourceType: "Observation" }), (err) => {
      assert.equal(err.response.status, 401);
      assert.equal(err.response.data.resourceType, "OperationOutcome");
      return true;
    });
    const client = new Client({ baseUrl: `${server.url}/fhir`, bearerToken: token });
    await assert.rejects(client.read({ resourceType: "Observation", id: "0".repeat(56) + "-1" }), (err) => {
      assert.equal(err.response.status, 404);
      assert.equal(err.response.data.resourceType, "OperationOutcome");
      return true;
    });
    await assert.rejects(client.search({ resourceType: "Observation", searchParams: { "value-quantity": "5" } }), (err) => {
      assert.equal(err.response.status, 400);
      return true;
    });
  });
});
