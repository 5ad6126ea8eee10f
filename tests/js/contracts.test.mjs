// Deploys the committed contract artifacts on each chain of the shared harness (the embedded
// node and Ganache, same assertions) and walks medledger's access rule: directory, anchors,
// grants, access logging, revocation, expiry and emergencies.
//
//   node --test tests/js/contracts.test.mjs

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { ContractFactory, keccak256, toUtf8Bytes } from "ethers";
import { backends, startChain } from "./harness.mjs";

const artifactsDir = new URL("../../contracts/artifacts/", import.meta.url);
const artifact = (name) => JSON.parse(readFileSync(new URL(`${name}.json`, artifactsDir), "utf8"));

const EMERGENCY_WINDOW = 24n * 3600n;
const Kind = { Report: 0, Prescription: 1, Other: 2 };
const Purpose = { Treatment: 0, Research: 1 };
const Scope = { All: 0, Kinds: 1, Records: 2 };
const Role = { None: 0n, Admin: 1n, Patient: 2n, Doctor: 3n };

const id = (label) => keccak256(toUtf8Bytes(label));

let chain;
let provider;
let admin, doctor, patient, outsider;
let registry, records, consent;

async function deploy(name, signer, ...args) {
  const a = artifact(name);
  const contract = await new ContractFactory(a.abi, a.bytecode, signer).deploy(...args);
  await contract.waitForDeployment();
  return contract;
}

async function send(txPromise) {
  const receipt = await (await txPromise).wait();
  assert.equal(receipt.status, 1);
  return receipt;
}

// Fails unless `promise` reverts with the custom error `name` of `contract`; returns its args.
async function expectCustomError(contract, promise, name) {
  let caught;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught, `expected a revert with ${name}, but the call succeeded`);
  // eth_call reverts carry the data where ethers looks for it; Ganache's eth_estimateGas (the first
  // step of sending a transaction) nests it as { result: "0x…" }, which ethers does not unwrap.
  const rpcData = caught.info?.error?.data;
  const data = caught.data ?? (typeof rpcData === "object" ? rpcData?.result : rpcData);
  assert.ok(typeof data === "string" && data.length >= 10, `no revert data in: ${caught.message}`);
  const parsed = contract.interface.parseError(data);
  assert.ok(parsed, `revert data ${data} is not an error of this contract`);
  assert.equal(parsed.name, name);
  return parsed.args;
}

function eventsOf(contract, receipt, name) {
  return receipt.logs
    .filter((log) => log.address.toLowerCase() === contract.target.toLowerCase())
    .map((log) => contract.interface.parseLog(log))
    .filter((ev) => ev && ev.name === name);
}

async function now() {
  return BigInt((await provider.getBlock("latest")).timestamp);
}

async function advance(seconds) {
  await provider.send("evm_increaseTime", [Number(seconds)]);
  await provider.send("evm_mine", []);
}

function suite(kind) {
  before(async () => {
    chain = await startChain(kind);
    provider = chain.provider;
    [admin, doctor, patient, outsider] = chain.wallets.slice(0, 4);

    // Deploy order: Registry, Records(registry), Consent(registry, records, window, daily cap),
    // setConsent.
    registry = await deploy("Registry", admin);
    records = await deploy("Records", admin, registry.target);
    consent = await deploy("Consent", admin, registry.target, records.target, EMERGENCY_WINDOW, 3);
    await send(records.setConsent(consent.target));
  });

  after(async () => {
    await chain?.stop();
  });

  test("deployment is wired and every contract fits the size limit", async () => {
    assert.equal(await records.consentContract(), consent.target);
    assert.equal(await records.registryContract(), registry.target);
    assert.equal(await consent.recordsContract(), records.target);
    assert.equal(await consent.emergencyWindow(), EMERGENCY_WINDOW);
    assert.equal(await registry.roleOf(admin.address), Role.Admin);
    for (const [name, contract] of Object.entries({ Registry: registry, Records: records, Consent: consent })) {
      const code = await provider.getCode(contract.target);
      // Same length as the artifact (immutables are filled in at deploy time, so bytes may differ).
      assert.equal(code.length, artifact(name).deployedBytecode.length, `${name} runtime differs`);
      assert.ok((code.length - 2) / 2 <= 24576, `${name} runtime is too large`);
    }
    await expectCustomError(records, records.setConsent.staticCall(consent.target), "ConsentAlreadySet");
    await expectCustomError(records, records.connect(outsider).setConsent.staticCall(consent.target), "NotAdmin");
  });

  test("happy path: directory, anchor, grant, access, revoke, expiry, emergency", async () => {
    // Admin builds the directory.
    const hospitalRx = await send(
      registry.addHospital("St Mary", "Leeds", "1 Main St", "cardiology", "24h ER", "+44 0000"),
    );
    const [{ args: hospitalAdded }] = eventsOf(registry, hospitalRx, "HospitalAdded");
    const hospitalId = hospitalAdded.id;
    assert.equal(hospitalId, 1n);
    assert.equal(await registry.hospitalCount(), 1n);
    assert.equal((await registry.getHospital(hospitalId)).name, "St Mary");
    await send(registry.addDoctor(doctor.address, "Dr Who", "cardiology", "GMC-1", hospitalId));
    assert.equal(await registry.isActiveDoctor(doctor.address), true);
    assert.equal(await registry.doctorAt(0), doctor.address);
    await expectCustomError(
      registry,
      registry.connect(outsider).addHospital.staticCall("X", "", "", "", "", ""),
      "NotAdmin",
    );

    // The patient registers itself and anchors a report.
    await send(registry.connect(patient).registerPatient());
    assert.equal(await registry.isPatient(patient.address), true);
    assert.equal(await registry.patientCount(), 1n);
    const reportId = id("report-1");
    const reportHash = id("ciphertext-1");
    const anchorRx = await send(records.connect(patient).anchorRecord(reportId, Kind.Report, reportHash));
    const [{ args: anchored }] = eventsOf(records, anchorRx, "RecordAnchored");
    assert.equal(anchored.patient, patient.address);
    assert.equal(anchored.author, patient.address);
    const anchor = await records.getRecord(reportId);
    assert.equal(anchor.contentHash, reportHash);
    assert.equal(anchor.kind, BigInt(Kind.Report));
    assert.deepEqual([...(await records.recordsOf(patient.address))], [reportId]);
    await expectCustomError(
      records,
      records.connect(patient).anchorRecord.staticCall(reportId, Kind.Report, reportHash),
      "RecordExists",
    );

    // Without a grant the doctor is refused; the patient may always read.
    assert.equal(await consent.canAccess(patient.address, doctor.address, reportId, Purpose.Treatment), false);
    await send(consent.connect(patient).logAccess(patient.address, reportId, Purpose.Treatment));

    // The patient grants the doctor treatment access to all records for an hour.
    const expiresAt = (await now()) + 3600n;
    const grantRx = await send(
      consent.connect(patient).grantDoctor(doctor.address, Scope.All, 0, [], Purpose.Treatment, expiresAt),
    );
    const [{ args: granted }] = eventsOf(consent, grantRx, "Granted");
    const grantId = granted.id;
    assert.equal(grantId, 1n);
    assert.equal(granted.doctor, doctor.address);
    assert.deepEqual([...(await consent.grantsOf(patient.address))], [grantId]);
    assert.equal((await consent.getGrant(grantId)).expiresAt, expiresAt);

    // The doctor opens the record: allowed, logged, not an emergency.
    assert.equal(await consent.canAccess(patient.address, doctor.address, reportId, Purpose.Treatment), true);
    assert.equal(await consent.canAccess(patient.address, doctor.address, reportId, Purpose.Research), false);
    const logRx = await send(consent.connect(doctor).logAccess(patient.address, reportId, Purpose.Treatment));
    const [{ args: logged }] = eventsOf(consent, logRx, "AccessLogged");
    assert.equal(logged.reader, doctor.address);
    assert.equal(logged.recordId, reportId);
    assert.equal(logged.emergency, false);

    // With treatment access the doctor may anchor a prescription.
    const rxId = id("prescription-1");
    await send(records.connect(doctor).anchorPrescription(rxId, patient.address, id("rx-ciphertext")));
    const rx = await records.getRecord(rxId);
    assert.equal(rx.kind, BigInt(Kind.Prescription));
    assert.equal(rx.author, doctor.address);

    // A suspended doctor loses access at once.
    await send(registry.suspendDoctor(doctor.address));
    assert.equal(await consent.canAccess(patient.address, doctor.address, reportId, Purpose.Treatment), false);
    await send(registry.reactivateDoctor(doctor.address));

    // The patient revokes; the doctor is refused with AccessDenied(patient, doctor, record).
    const revokeRx = await send(consent.connect(patient).revoke(grantId));
    assert.equal(eventsOf(consent, revokeRx, "Revoked").length, 1);
    assert.equal((await consent.getGrant(grantId)).revoked, true);
    const denied = await expectCustomError(
      consent,
      consent.connect(doctor).logAccess.staticCall(patient.address, reportId, Purpose.Treatment),
      "AccessDenied",
    );
    assert.deepEqual([...denied], [patient.address, doctor.address, reportId]);
    await expectCustomError(consent, consent.connect(patient).revoke.staticCall(grantId), "AlreadyRevoked");
    await expectCustomError(
      records,
      records.connect(doctor).anchorPrescription.staticCall(id("prescription-2"), patient.address, id("x")),
      "NoTreatmentAccess",
    );

    // A grant through the hospital, scoped to reports only, that then expires.
    const shortExpiry = (await now()) + 600n;
    await send(
      consent
        .connect(patient)
        .grantHospital(hospitalId, Scope.Kinds, 1 << Kind.Report, [], Purpose.Treatment, shortExpiry),
    );
    assert.equal(await consent.canAccess(patient.address, doctor.address, reportId, Purpose.Treatment), true);
    assert.equal(await consent.canAccess(patient.address, doctor.address, rxId, Purpose.Treatment), false);
    await send(consent.connect(doctor).logAccess(patient.address, reportId, Purpose.Treatment));
    await advance(601n);
    assert.equal(await consent.canAccess(patient.address, doctor.address, reportId, Purpose.Treatment), false);
    await expectCustomError(
      consent,
      consent.connect(doctor).logAccess.staticCall(patient.address, reportId, Purpose.Treatment),
      "AccessDenied",
    );
    // Ganache's eth_estimateGas does not apply evm_increaseTime, so it would wrongly pass here; send
    // with a fixed gas limit instead and check that the mined transaction reverted.
    await assert.rejects(
      send(consent.connect(doctor).logAccess(patient.address, reportId, Purpose.Treatment, { gasLimit: 300000 })),
      (err) => err.code === "CALL_EXCEPTION",
    );
    await expectCustomError(
      consent,
      consent
        .connect(patient)
        .grantDoctor.staticCall(doctor.address, Scope.All, 0, [], Purpose.Treatment, shortExpiry),
      "ExpiryInPast",
    );

    // Emergency: access for Treatment only, flagged as such, until the window ends.
    const emRx = await send(consent.connect(doctor).declareEmergency(patient.address, id("unconscious")));
    const [{ args: declared }] = eventsOf(consent, emRx, "EmergencyDeclared");
    assert.equal(await consent.emergencyUntil(patient.address, doctor.address), declared.until);
    assert.equal(await consent.canAccess(patient.address, doctor.address, reportId, Purpose.Research), false);
    const emLogRx = await send(consent.connect(doctor).logAccess(patient.address, reportId, Purpose.Treatment));
    assert.equal(eventsOf(consent, emLogRx, "AccessLogged")[0].args.emergency, true);
    // No silent extension while it is open; views of details are logged like openings.
    await expectCustomError(
      consent,
      consent.connect(doctor).declareEmergency.staticCall(patient.address, id("again")),
      "EmergencyOpen",
    );
    const viewRx = await send(consent.connect(doctor).logViews([reportId], [patient.address], [1], Purpose.Treatment));
    assert.equal(eventsOf(consent, viewRx, "RecordViewed")[0].args.emergency, true);
    assert.equal(eventsOf(consent, viewRx, "ProfileViewed")[0].args.fields, 1n);
    await advance(EMERGENCY_WINDOW + 1n);
    assert.equal(await consent.canAccess(patient.address, doctor.address, reportId, Purpose.Treatment), false);
    // Declared again, then ended by the patient: access stops at once.
    await send(consent.connect(doctor).declareEmergency(patient.address, id("again")));
    assert.equal(await consent.canAccess(patient.address, doctor.address, reportId, Purpose.Treatment), true);
    await expectCustomError(
      consent,
      consent.connect(doctor).endEmergency.staticCall(patient.address, doctor.address),
      "NotPatientOrAdmin",
    );
    const endRx = await send(consent.connect(patient).endEmergency(patient.address, doctor.address));
    assert.equal(eventsOf(consent, endRx, "EmergencyEnded")[0].args.endedBy, patient.address);
    assert.equal(await consent.canAccess(patient.address, doctor.address, reportId, Purpose.Treatment), false);

    // Strangers and wrong owners get nothing.
    assert.equal(await consent.canAccess(outsider.address, doctor.address, reportId, Purpose.Treatment), false);
    assert.equal(await consent.canAccess(patient.address, outsider.address, reportId, Purpose.Treatment), false);
  });

  test("refusals are custom errors, and scopes cover exactly what they name", async () => {
    const [admin2, doc2, pat2, pat3, stranger] = chain.wallets.slice(4, 9);
    const ZERO = "0x0000000000000000000000000000000000000000";
    const ZERO32 = `0x${"00".repeat(32)}`;

    // Registry.
    await send(registry.addAdmin(admin2.address));
    await expectCustomError(registry, registry.addAdmin.staticCall(admin2.address), "AlreadyRegistered");
    await expectCustomError(registry, registry.addAdmin.staticCall(ZERO), "ZeroAddress");
    await expectCustomError(registry, registry.addHospital.staticCall("", "", "", "", "", ""), "EmptyName");
    const hospitalId = (await registry.hospitalCount()) + 1n;
    await send(registry.connect(admin2).addHospital("North", "York", "2 High St", "", "", ""));
    await send(registry.updateHospital(hospitalId, "North General", "York", "2 High St", "icu", "", ""));
    assert.equal((await registry.getHospital(hospitalId)).name, "North General");
    await expectCustomError(registry, registry.getHospital(99n), "UnknownHospital");
    await expectCustomError(registry, registry.addDoctor.staticCall(doc2.address, "Dr B", "", "", 99n), "UnknownHospital");
    await expectCustomError(registry, registry.addDoctor.staticCall(ZERO, "Dr B", "", "", hospitalId), "ZeroAddress");
    await expectCustomError(registry, registry.addDoctor.staticCall(admin2.address, "Dr B", "", "", hospitalId), "AlreadyRegistered");
    await send(registry.addDoctor(doc2.address, "Dr B", "icu", "GMC-2", hospitalId));
    await expectCustomError(registry, registry.getDoctor(stranger.address), "UnknownDoctor");
    await expectCustomError(registry, registry.reactivateDoctor.staticCall(doc2.address), "AlreadyInState");
    await expectCustomError(registry, registry.reactivateHospital.staticCall(hospitalId), "AlreadyInState");
    await expectCustomError(registry, registry.doctorAt(99n), "IndexOutOfRange");
    await expectCustomError(registry, registry.connect(doc2).registerPatient.staticCall(), "AlreadyRegistered");
    await send(registry.connect(pat2).registerPatient());
    await send(registry.connect(pat3).registerPatient());
    assert.equal(await registry.roleOf(pat2.address), Role.Patient);

    // Records.
    const note = id("pat2-note");
    const report = id("pat2-report");
    await expectCustomError(records, records.connect(stranger).anchorRecord.staticCall(note, Kind.Other, note), "NotPatient");
    await expectCustomError(records, records.connect(pat2).anchorRecord.staticCall(note, Kind.Prescription, note), "InvalidKind");
    await expectCustomError(records, records.connect(pat2).anchorRecord.staticCall(note, Kind.Other, ZERO32), "ZeroHash");
    await expectCustomError(records, records.getRecord(note), "UnknownRecord");
    await send(records.connect(pat2).anchorRecord(note, Kind.Other, id("c-note")));
    await send(records.connect(pat2).anchorRecord(report, Kind.Report, id("c-report")));
    await expectCustomError(
      records,
      records.connect(stranger).anchorPrescription.staticCall(id("p"), pat2.address, id("c")),
      "NotActiveDoctor",
    );
    await expectCustomError(
      records,
      records.connect(doc2).anchorPrescription.staticCall(id("p"), stranger.address, id("c")),
      "NotPatient",
    );

    // Consent: refusals.
    const later = (await now()) + 86400n;
    const c2 = consent.connect(pat2);
    await expectCustomError(consent, consent.connect(stranger).grantDoctor.staticCall(doc2.address, Scope.All, 0, [], Purpose.Treatment, later), "NotPatient");
    await expectCustomError(consent, c2.grantDoctor.staticCall(stranger.address, Scope.All, 0, [], Purpose.Treatment, later), "UnknownDoctor");
    await expectCustomError(consent, c2.grantHospital.staticCall(0n, Scope.All, 0, [], Purpose.Treatment, later), "UnknownHospital");
    await expectCustomError(consent, c2.grantDoctor.staticCall(doc2.address, Scope.All, 0, [], Purpose.Treatment, 1n), "ExpiryInPast");
    await expectCustomError(consent, c2.grantDoctor.staticCall(doc2.address, Scope.Kinds, 0, [], Purpose.Treatment, later), "EmptyScope");
    await expectCustomError(consent, c2.grantDoctor.staticCall(doc2.address, Scope.Kinds, 8, [], Purpose.Treatment, later), "InvalidKindsMask");
    await expectCustomError(consent, c2.grantDoctor.staticCall(doc2.address, Scope.Records, 0, [], Purpose.Treatment, later), "EmptyScope");
    await expectCustomError(consent, c2.grantDoctor.staticCall(doc2.address, Scope.Records, 0, [unanchoredId(pat2)], Purpose.Treatment, later), "UnknownRecord");
    await expectCustomError(consent, consent.getGrant(999n), "UnknownGrant");
    await expectCustomError(consent, consent.connect(stranger).declareEmergency.staticCall(pat2.address, id("r")), "NotActiveDoctor");
    await expectCustomError(consent, consent.connect(doc2).declareEmergency.staticCall(stranger.address, id("r")), "NotPatient");
    await expectCustomError(consent, consent.connect(doc2).declareEmergency.staticCall(pat2.address, ZERO32), "ZeroHash");

    // A research grant scoped to one record.
    const rx = await send(c2.grantDoctor(doc2.address, Scope.Records, 0, [note], Purpose.Research, later));
    const [{ args: granted }] = eventsOf(consent, rx, "Granted");
    const grant = await consent.getGrant(granted.id);
    assert.deepEqual([...grant.recordIds], [note]);
    assert.equal(grant.patient, pat2.address);
    assert.equal(grant.hospitalId, 0n);
    assert.equal(await consent.canAccess(pat2.address, doc2.address, note, Purpose.Research), true);
    assert.equal(await consent.canAccess(pat2.address, doc2.address, note, Purpose.Treatment), false);
    assert.equal(await consent.canAccess(pat2.address, doc2.address, report, Purpose.Research), false);
    assert.equal(await consent.canTreat(pat2.address, doc2.address), false);
    // A research grant never lets the doctor write prescriptions.
    await expectCustomError(
      records,
      records.connect(doc2).anchorPrescription.staticCall(id("p"), pat2.address, id("c")),
      "NoTreatmentAccess",
    );
    await expectCustomError(consent, consent.connect(pat3).revoke.staticCall(granted.id), "NotGrantOwner");
    await expectCustomError(consent, consent.revoke.staticCall(0n), "UnknownGrant");
    // Another patient's grants say nothing about this patient's records.
    assert.equal(await consent.canAccess(pat3.address, doc2.address, note, Purpose.Research), false);

    // A suspended hospital takes its doctors' access with it, and gives it back on reactivation.
    await send(registry.suspendHospital(hospitalId));
    assert.equal(await registry.isActiveDoctor(doc2.address), false);
    assert.equal(await consent.canAccess(pat2.address, doc2.address, note, Purpose.Research), false);
    await send(registry.reactivateHospital(hospitalId));
    assert.equal(await consent.canAccess(pat2.address, doc2.address, note, Purpose.Research), true);
  });

  // A record id nobody anchored.
  function unanchoredId(signer) {
    return id(`never-anchored-${signer.address}`);
  }
}

for (const kind of backends) describe(kind, () => suite(kind));
