#!/usr/bin/env python3
"""Checks the trust properties against a fresh `medledger serve --demo` (embedded defaults), with
the requests that showed them broken: test methods on serve's node, the public mnemonic's ether,
CORS, bounded and visible break-glass, every read traced, no doctor login made by the admin.
Usage: scripts/trust-check.py target/debug/medledger. Prints one line per check."""
import json, os, subprocess, sys, tempfile, time, urllib.request, re

BIN = sys.argv[1]
d = tempfile.mkdtemp()
env = dict(os.environ, MEDLEDGER_ADMIN_PASSWORD="a good long admin password")
p = subprocess.Popen([BIN, "serve", "--demo", "--data-dir", f"{d}/data", "--escrow-key", f"{d}/escrow",
                      "--http-addr", "127.0.0.1:0", "--rpc-addr", "127.0.0.1:0"],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
lines = []
for line in p.stdout:
    lines.append(line.rstrip())
    if line.startswith("Listening on "):
        break
app = lines[-1].split()[-1]
rpc = next(l.split("): ")[1] for l in lines if "JSON-RPC" in l)
logins = {m.group(1): m.group(2) for l in lines if (m := re.match(r"\s+\w+\s+(\S+)\s+(\S+)$", l))}

def call(method, url, body=None, token=None, headers=None):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("content-type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if text else None), dict(r.headers)
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        return e.code, (json.loads(text) if text else None), dict(e.headers)

def rpc_call(method, params, headers=None):
    return call("POST", rpc, {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, headers=headers)

def login(user, password):
    s, b, _ = call("POST", f"{app}/api/v1/auth/login", {"username": user, "password": password})
    return b.get("token") if s == 200 else None

def show(label, what):
    print(f"{label:58} {what}")

print(f"# {BIN}")
# 1. The node inside serve.
s, b, _ = rpc_call("evm_snapshot", [])
show("1. evm_snapshot on serve's node", b.get("error", {}).get("code") or f"snapshot {b.get('result')}")
s, b, _ = rpc_call("evm_increaseTime", [365 * 86400])
show("1. evm_increaseTime (a year)", b.get("error", {}).get("code") or f"clock moved: {b.get('result')}")
s, b, _ = rpc_call("eth_accounts", [])
show("1. eth_accounts (unlocked accounts)", len(b["result"]))
s, b, _ = rpc_call("eth_getBalance", ["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "latest"])
show("1. ether on the public mnemonic's account 0 (wei)", int(b["result"], 16))
s, b, h = rpc_call("eth_chainId", [], headers={"origin": "http://evil.example"})
show("1. CORS answer to http://evil.example", h.get("access-control-allow-origin") or h.get("Access-Control-Allow-Origin") or "(none)")
# 2. Break-glass.
patient = login("alice", logins["alice"])
outsider = login("dr.petit", logins["dr.petit"])
_, me, _ = call("GET", f"{app}/api/v1/me", token=patient)
s, b, _ = call("POST", f"{app}/api/v1/emergency", {"patient": me["address"], "reason": "test"}, token=outsider)
show("2. unrelated doctor declares an emergency", s)
s2, _, _ = call("POST", f"{app}/api/v1/emergency", {"patient": me["address"], "reason": "again"}, token=outsider)
show("2. ... and declares again to extend it", s2)
s, recs, _ = call("GET", f"{app}/api/v1/records?patient={me['address']}", token=outsider)
show("2. ... lists the patient's reports (titles)", f"{s}, {len(recs.get('records', []))} with titles")
s, audit, _ = call("GET", f"{app}/api/v1/audit", token=patient)
show("2./3. the patient's access log after that", [e.get("action", "opened") for e in audit["events"]])
s, em, _ = call("GET", f"{app}/api/v1/emergencies", token=patient)
show("2. the patient sees the emergency (GET /emergencies)", s if s != 200 else f"{len(em['emergencies'])} open, reason: {em['emergencies'][0].get('reason') if em['emergencies'] else None}")
eid = b.get("id")
s, _, _ = call("POST", f"{app}/api/v1/emergencies/{eid}/end", {}, token=patient)
show("2. the patient ends it", s)
s, recs, _ = call("GET", f"{app}/api/v1/records?patient={me['address']}", token=outsider)
show("2. ... then the doctor lists the reports", f"{s}, {len(recs.get('records', []))}")
# 3. Every read traced: the granted doctor lists and views.
doctor = login("dr.martin", logins["dr.martin"])
_, before, _ = call("GET", f"{app}/api/v1/audit", token=patient)
call("GET", f"{app}/api/v1/patients", token=doctor)
call("GET", f"{app}/api/v1/records?patient={me['address']}", token=doctor)
_, after, _ = call("GET", f"{app}/api/v1/audit", token=patient)
show("3. entries the granted doctor's two reads added", len(after["events"]) - len(before["events"]))
# 4. The admin adds a doctor and tries to log in as them.
admin = login("admin", env["MEDLEDGER_ADMIN_PASSWORD"])
s, b, _ = call("POST", f"{app}/api/v1/doctors", {"username": "dr.operator", "password": "chosen by the admin", "name": "Dr. Operator", "hospital_id": 1}, token=admin)
show("4. admin adds a doctor with a password of their choosing", f"{s}, enrolment link: {'enrolment_url' in (b or {})}")
show("4. admin logs in as that doctor", "logged in" if login("dr.operator", "chosen by the admin") else "refused")
p.kill()
