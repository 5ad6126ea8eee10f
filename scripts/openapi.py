#!/usr/bin/env python3
"""Writes crates/web/src/api/openapi.json, the OpenAPI 3.1 document of the REST API.

The document is committed; a Rust test checks that every route it names exists and that every
route the server has is in it. Edit this script, run it, and commit both."""
import json, pathlib

S = lambda t, **kw: {"type": t, **kw}
STR, INT, BOOL = S("string"), S("integer"), S("boolean")
ADDR = S("string", pattern="^0x[0-9a-fA-F]{40}$", description="an Ethereum account address")
HASH = S("string", pattern="^0x[0-9a-fA-F]{64}$")
ref = lambda n: {"$ref": f"#/components/schemas/{n}"}

schemas = {
    "Error": S("object", required=["error"], properties={"error": S("object", required=["code", "message"], properties={"code": STR, "message": STR})}),
    "Transaction": S("object", description="what MetaMask shows for a mined transaction", properties={
        "hash": HASH, "block_number": INT, "gas_used": INT,
        "effective_gas_price": S("string", description="wei per gas, decimal"),
        "fee_wei": S("string", description="gas used x effective gas price, decimal wei")}),
    "Login": S("object", required=["username", "password"], properties={"username": STR, "password": STR, "code": S("string", description="the second factor's current 6-digit code, for an account that has one")}),
    "Session": S("object", properties={"username": STR, "role": S("string", enum=["admin", "patient", "doctor"]), "address": ADDR, "token": STR, "idle_timeout_seconds": INT,
        "must_set_up_second_factor": S("boolean", description="the role needs a second factor: until it is set up, only /me and /me/mfa answer")}),
    "Me": S("object", properties={"username": STR, "role": STR, "address": ADDR, "balance_wei": STR, "chain_id": INT, "second_factor": BOOL, "second_factor_required": BOOL}),
    "SecondFactorSetup": S("object", properties={"secret": S("string", description="base32"), "otpauth_url": STR}),
    "Code": S("object", required=["code"], properties={"code": STR}),
    "Enrol": S("object", required=["username", "password"], properties={"username": STR, "password": S("string", minLength=12)}),
    "Invitation": S("object", description="the enrolment link is shown only in this answer", properties={"role": S("string", enum=["doctor", "admin"]), "invite_key": ADDR, "expires_at": INT, "token": STR, "enrolment_url": STR}),
    "Enrolment": S("object", properties={"invite_key": ADDR, "role": STR, "name": STR, "hospital_id": INT, "expires_at": INT, "used_by": ADDR, "status": S("string", enum=["open", "used", "withdrawn", "expired"])}),
    "Emergency": S("object", properties={"id": INT, "patient": ADDR, "doctor": ADDR, "doctor_name": STR, "hospital": STR,
        "reason": S("string", description="for the patient and the doctor only"), "start": INT, "until": INT, "open": BOOL, "ended_by": ADDR, "ended_by_name": STR,
        "used": S("array", items=STR, description="for the patient: what the doctor opened or viewed under it"), "tx_hash": HASH}),
    "PasswordChange": S("object", required=["current_password", "new_password"], properties={"current_password": STR, "new_password": S("string", minLength=12)}),
    "PatientSignup": S("object", required=["username", "password", "name"], properties={"username": STR, "password": S("string", minLength=12), "name": STR, "date_of_birth": S("string", format="date"), "contact": STR}),
    "HospitalInput": S("object", required=["name"], properties={k: STR for k in ["name", "city", "address", "specialties", "services", "contact"]}),
    "Hospital": S("object", properties={"id": INT, **{k: STR for k in ["name", "city", "address", "specialties", "services", "contact"]}, "active": BOOL}),
    "DoctorInvite": S("object", required=["name", "hospital_id"], properties={"name": STR, "specialty": STR, "licence_id": STR, "hospital_id": INT}),
    "Doctor": S("object", properties={"address": ADDR, "username": STR, "name": STR, "specialty": STR, "licence_id": STR, "hospital_id": INT, "active": BOOL}),
    "Anchor": S("object", properties={"content_hash": HASH, "tx_hash": HASH, "block_number": INT, "integrity": S("string", enum=["verified", "mismatch", "missing"])}),
    "Record": S("object", properties={"id": HASH, "patient": ADDR, "author": ADDR, "kind": S("string", enum=["report", "prescription", "other"]),
        "meta": S("object", description="absent when you hold no key to it", properties={"title": STR, "date": STR, "notes": STR, "media_type": STR, "size": INT}),
        "created_at": INT, "anchor": ref("Anchor")}),
    "GrantInput": S("object", description="exactly one of doctor / hospital_id; expires_at (unix seconds) or expires_in_days", properties={
        "doctor": ADDR, "hospital_id": INT, "scope": S("string", enum=["all", "kinds", "records"]),
        "kinds": S("array", items=S("string", enum=["report", "prescription", "other"])), "record_ids": S("array", items=HASH),
        "purpose": S("string", enum=["treatment", "research"]), "expires_at": INT, "expires_in_days": INT}),
    "Grant": S("object", properties={"id": INT, "patient": ADDR, "doctor": ADDR, "hospital_id": INT, "scope": STR, "kinds": S("array", items=STR),
        "record_ids": S("array", items=HASH), "purpose": STR, "expires_at": INT, "revoked": BOOL, "active": BOOL}),
    "Medication": S("object", required=["name"], properties={k: STR for k in ["name", "dose", "frequency", "duration"]}),
    "PrescriptionInput": S("object", required=["patient", "medications"], properties={"patient": ADDR, "medications": S("array", items=ref("Medication")), "notes": STR}),
    "Prescription": S("object", properties={"id": HASH, "patient": ADDR, "doctor": ADDR, "created_at": INT,
        "body": S("object", properties={"medications": S("array", items=ref("Medication")), "notes": STR}), "anchor": ref("Anchor")}),
    "EmergencyInput": S("object", required=["patient", "reason"], properties={"patient": ADDR, "reason": STR}),
    "SharedPatient": S("object", properties={"address": ADDR, "name": STR, "date_of_birth": STR, "until": INT, "emergency": BOOL}),
    "AccessEvent": S("object", properties={"action": S("string", enum=["opened", "viewed", "viewed_profile", "declared_emergency", "ended_emergency"]),
        "summary": S("string", description="the entry in words"), "patient": ADDR, "reader": ADDR, "reader_name": STR, "record_id": HASH,
        "record_ids": S("array", items=HASH), "record_title": S("string", description="for the patient only"),
        "purpose": STR, "emergency": BOOL, "time": INT, "block_number": INT, "tx_hash": HASH}),
    "Health": S("object", properties={"status": S("string", enum=["ok", "degraded"]), "chain_id": INT, "latest_block": INT, "chain_state": S("boolean", description="whether the chain answers a state query"), "database": BOOL, "blob_store": BOOL}),
}

def err(*codes):
    names = {400: "bad input", 401: "not logged in", 403: "not allowed", 404: "not found", 409: "conflict or integrity failure",
             413: "too large", 415: "unsupported type", 422: "breaks a rule", 429: "too many attempts (or emergencies today)", 503: "the chain does not answer, or a transaction is not mined yet"}
    return {str(c): {"description": names[c], "content": {"application/json": {"schema": ref("Error")}}} for c in codes}

def ok(code, desc, schema=None, write=False):
    if schema is not None and write:
        schema = {"allOf": [schema, S("object", properties={"transaction": ref("Transaction")})]}
    r = {"description": desc}
    if schema is not None:
        r["content"] = {"application/json": {"schema": schema}}
    return {str(code): r}

def body(name):
    return {"required": True, "content": {"application/json": {"schema": ref(name)}}}

def op(summary, responses, auth=True, request=None, params=None, tag=None):
    o = {"summary": summary, "responses": responses}
    if tag: o["tags"] = [tag]
    if not auth: o["security"] = []
    if request: o["requestBody"] = request
    if params: o["parameters"] = params
    return o

def q(name, desc, schema=STR):
    return {"name": name, "in": "query", "required": False, "description": desc, "schema": schema}
def p(name, schema=STR):
    return {"name": name, "in": "path", "required": True, "schema": schema}

AUTH = (401,)
lst = lambda key, item: S("object", properties={key: S("array", items=ref(item))})
paths = {
    "/healthz": {"get": op("Chain id, latest block, and whether the chain's state, the database and the blob store answer", {**ok(200, "healthy", ref("Health")), "503": {"description": "degraded", "content": {"application/json": {"schema": ref("Health")}}}}, auth=False, tag="system")},
    "/api/v1/openapi.json": {"get": op("This document", ok(200, "the OpenAPI document"), auth=False, tag="system")},
    "/api/v1/auth/login": {"post": op("Log in: a session cookie and a bearer token (401 second_factor_required: send the code too)", {**ok(200, "logged in", ref("Session")), **err(400, 401, 422, 429, 503)}, auth=False, request=body("Login"), tag="auth")},
    "/api/v1/me/mfa": {"post": op("Set up a second factor (TOTP): a secret to add to an authenticator app, pending until confirmed", {**ok(201, "the secret", ref("SecondFactorSetup")), **err(401)}, tag="auth")},
    "/api/v1/me/mfa/confirm": {"post": op("Turn the second factor on with a code from the app", {"204": {"description": "on"}, **err(401, 409, 422)}, request=body("Code"), tag="auth")},
    "/api/v1/me/mfa/off": {"post": op("Turn the second factor off with a current code (not for a role that requires it)", {"204": {"description": "off"}, **err(401, 403, 422)}, request=body("Code"), tag="auth")},
    "/api/v1/auth/logout": {"post": op("End this session", {"204": {"description": "logged out"}, **err(*AUTH)}, tag="auth")},
    "/api/v1/me": {"get": op("Who am I: role, address, balance", {**ok(200, "you", ref("Me")), **err(*AUTH)}, tag="auth")},
    "/api/v1/me/password": {"post": op("Change my password (ends my other sessions)", {"204": {"description": "changed"}, **err(400, 401, 403, 422)}, request=body("PasswordChange"), tag="auth")},
    "/api/v1/me/keystore": {"get": op("Download my key as a Web3 Secret Storage file (encrypted under my password)", {**ok(200, "the keystore JSON"), **err(*AUTH)}, tag="auth")},
    "/api/v1/patients": {
        "post": op("Sign up as a patient", {**ok(201, "registered on chain", S("object", properties={"username": STR, "address": ADDR, "role": STR}), write=True), **err(400, 409, 422, 503)}, auth=False, request=body("PatientSignup"), tag="directory"),
        "get": op("Doctor: the patients who shared with me (or whose emergency I declared)", {**ok(200, "patients", lst("patients", "SharedPatient")), **err(401, 403)}, tag="sharing")},
    "/api/v1/hospitals": {
        "post": op("Admin: add a hospital", {**ok(201, "added", ref("Hospital"), write=True), **err(400, 401, 403, 422)}, request=body("HospitalInput"), tag="directory"),
        "get": op("Search hospitals", {**ok(200, "hospitals", lst("hospitals", "Hospital"))}, auth=False, params=[q("city", "part of the city"), q("specialty", "part of a specialty")], tag="directory")},
    "/api/v1/hospitals/{id}": {
        "get": op("A hospital", {**ok(200, "the hospital", ref("Hospital")), **err(400, 404)}, auth=False, params=[p("id", INT)], tag="directory"),
        "put": op("Admin: edit a hospital", {**ok(200, "updated", ref("Hospital"), write=True), **err(400, 401, 403, 404, 422)}, request=body("HospitalInput"), params=[p("id", INT)], tag="directory")},
    "/api/v1/hospitals/{id}/suspend": {"post": op("Admin: suspend a hospital (its doctors lose access at once)", {**ok(200, "suspended", ref("Hospital"), write=True), **err(400, 401, 403, 404, 409)}, params=[p("id", INT)], tag="directory")},
    "/api/v1/hospitals/{id}/reactivate": {"post": op("Admin: reactivate a hospital", {**ok(200, "reactivated", ref("Hospital"), write=True), **err(400, 401, 403, 404, 409)}, params=[p("id", INT)], tag="directory")},
    "/api/v1/doctors": {
        "post": op("Admin: invite a doctor (their directory entry to be) and get a one-time enrolment link for them", {**ok(201, "invited", ref("Invitation"), write=True), **err(400, 401, 403, 404, 422)}, request=body("DoctorInvite"), tag="directory"),
        "get": op("List doctors", {**ok(200, "doctors", lst("doctors", "Doctor"))}, auth=False, params=[q("hospital_id", "only this hospital's", INT)], tag="directory")},
    "/api/v1/admins": {"post": op("Admin: invite another admin and get a one-time enrolment link", {**ok(201, "invited", ref("Invitation"), write=True), **err(401, 403)}, tag="directory")},
    "/api/v1/enrolments": {"get": op("Admin: the invitations nobody took up yet", {**ok(200, "invitations", lst("enrolments", "Enrolment")), **err(401, 403)}, tag="directory")},
    "/api/v1/enrolments/{key}": {"delete": op("Admin: withdraw an invitation", {**ok(200, "withdrawn", S("object", properties={"invite_key": ADDR, "withdrawn": BOOL}), write=True), **err(400, 401, 403, 404, 409)}, params=[p("key")], tag="directory")},
    "/api/v1/enrol/{token}": {
        "get": op("What an enrolment link is for", {**ok(200, "the invitation", ref("Enrolment")), **err(404)}, auth=False, params=[p("token")], tag="directory"),
        "post": op("Take up an enrolment link: your own user name and password; your key is made now", {**ok(201, "enrolled", S("object", properties={"username": STR, "address": ADDR, "role": STR}), write=True), **err(400, 404, 409, 422, 503)}, auth=False, request=body("Enrol"), params=[p("token")], tag="directory")},
    "/api/v1/doctors/{address}": {"get": op("A doctor", {**ok(200, "the doctor", ref("Doctor")), **err(400, 404)}, auth=False, params=[p("address")], tag="directory")},
    "/api/v1/doctors/{address}/suspend": {"post": op("Admin: suspend a doctor (access ends at once)", {**ok(200, "suspended", ref("Doctor"), write=True), **err(400, 401, 403, 404, 409)}, params=[p("address")], tag="directory")},
    "/api/v1/doctors/{address}/reactivate": {"post": op("Admin: reactivate a doctor", {**ok(200, "reactivated", ref("Doctor"), write=True), **err(400, 401, 403, 404, 409)}, params=[p("address")], tag="directory")},
    "/api/v1/records": {
        "post": op("Patient: share a health report (encrypted, stored, anchored on chain), optionally granting doctors in the same step",
                   {**ok(201, "shared", ref("Record"), write=True), **err(400, 401, 403, 413, 415, 422)},
                   request={"required": True, "content": {"multipart/form-data": {"schema": S("object", required=["file", "title"], properties={
                       "file": S("string", format="binary", description="PDF, PNG, JPEG, plain text or JSON (FHIR); judged from the bytes"),
                       "title": STR, "kind": S("string", enum=["report", "other"]), "date": S("string", format="date"), "notes": STR,
                       "share_with": S("array", items=ADDR, description="doctors to grant this record to"), "purpose": S("string", enum=["treatment", "research"]),
                       "expires_in_days": INT})}}}, tag="records"),
        "get": op("My records (patient), or a patient's records I may open (doctor, ?patient=)", {**ok(200, "records", lst("records", "Record")), **err(400, 401, 403)},
                  params=[q("patient", "doctor: the patient's address"), q("purpose", "treatment (default) or research")], tag="records")},
    "/api/v1/records/{id}": {"get": op("A record's metadata, on-chain anchor and integrity status", {**ok(200, "the record", ref("Record")), **err(400, 401, 403, 404)}, params=[p("id"), q("purpose", "treatment (default) or research")], tag="records")},
    "/api/v1/records/{id}/content": {"get": op("A record's original bytes; the opening is logged on chain, signed by you", {"200": {"description": "the file, as an attachment; X-Medledger-Access-Tx names the access transaction"}, **err(400, 401, 403, 404, 409)}, params=[p("id"), q("purpose", "treatment (default) or research")], tag="records")},
    "/api/v1/prescriptions": {
        "post": op("Doctor: prescribe for a patient I may treat", {**ok(201, "prescribed", ref("Prescription"), write=True), **err(400, 401, 403, 422)}, request=body("PrescriptionInput"), tag="records"),
        "get": op("My prescriptions (patient) or those I wrote (doctor)", {**ok(200, "prescriptions", lst("prescriptions", "Prescription")), **err(401, 403)}, tag="records")},
    "/api/v1/grants": {
        "post": op("Patient: grant a doctor or a hospital access", {**ok(201, "granted", ref("Grant"), write=True), **err(400, 401, 403, 404, 422)}, request=body("GrantInput"), tag="sharing"),
        "get": op("My grants (patient), or grants given to me (doctor)", {**ok(200, "grants", lst("grants", "Grant")), **err(401, 403)}, tag="sharing")},
    "/api/v1/grants/{id}": {"delete": op("Patient: revoke a grant (takes effect on the next request)", {**ok(200, "revoked", ref("Grant"), write=True), **err(400, 401, 403, 404, 409)}, params=[p("id", INT)], tag="sharing")},
    "/api/v1/emergency": {"post": op("Doctor: declare an emergency for a patient (break-glass access for a fixed window; one open at a time, a daily cap)", {**ok(201, "declared", S("object", properties={"id": INT, "patient": ADDR, "doctor": ADDR, "until": INT}), write=True), **err(400, 401, 403, 404, 409, 422, 429)}, request=body("EmergencyInput"), tag="sharing")},
    "/api/v1/emergencies": {"get": op("Emergencies open on me or ended within a week (patient), those I declared (doctor), every open one (admin)", {**ok(200, "emergencies", lst("emergencies", "Emergency")), **err(401, 403)}, tag="sharing")},
    "/api/v1/emergencies/{id}/end": {"post": op("Patient or admin: end an emergency at once", {**ok(200, "ended", S("object", properties={"id": INT, "ended": BOOL}), write=True), **err(400, 401, 403, 404)}, params=[p("id", INT)], tag="sharing")},
    "/api/v1/audit": {"get": op("Everything done with my data (patient: openings, views of details and profile, emergencies), or everything I did (doctor), from the chain", {**ok(200, "events", lst("events", "AccessEvent")), **err(401, 403)}, tag="sharing")},
}

doc = {
    "openapi": "3.1.0",
    "info": {"title": "medledger API", "version": "1", "description": "Patient-owned health records anchored on an Ethereum ledger. Log in at /api/v1/auth/login and send the token as `Authorization: Bearer TOKEN` (or use the session cookie). Errors are `{\"error\": {\"code\", \"message\"}}`. Every write answers with its transaction."},
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}, {"cookie": []}],
    "paths": paths,
    "components": {"schemas": schemas, "securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer"},
        "cookie": {"type": "apiKey", "in": "cookie", "name": "medledger_session"}}},
}
out = pathlib.Path(__file__).resolve().parent.parent / "crates/web/src/api/openapi.json"
out.write_text(json.dumps(doc, indent=1) + "\n")
print(f"wrote {out}")
