-- The private ledger: everything here that is personal or clinical is sealed (AEAD) under a
-- per-object key, and that key is stored only wrapped (HPKE) for the people allowed to read it.

-- The deployment: chain id, contract addresses, escrow public key.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'patient', 'doctor')),
    address       TEXT NOT NULL UNIQUE,   -- 0x-prefixed lower-case hex
    keystore      TEXT NOT NULL,          -- Web3 Secret Storage v3 JSON (scrypt)
    password_hash TEXT NOT NULL,          -- argon2id PHC string
    enc_public    TEXT NOT NULL,          -- X25519 public key (hex) that keys are wrapped to
    profile       BLOB,                   -- sealed JSON: name, date of birth, contact
    created_at    INTEGER NOT NULL
);

-- Failed logins per user name (known or not: the answer must not tell them apart).
CREATE TABLE login_failures (
    username TEXT PRIMARY KEY,
    count    INTEGER NOT NULL,
    first_at INTEGER NOT NULL
);

-- Reports and prescriptions. The body is a sealed blob named by the id; the anchor is on chain.
CREATE TABLE records (
    id           TEXT PRIMARY KEY,        -- 0x + 64 hex: the on-chain record id
    patient      TEXT NOT NULL,
    author       TEXT NOT NULL,
    kind         INTEGER NOT NULL,
    meta         BLOB NOT NULL,           -- sealed JSON: title, date, notes, media type, size
    content_hash TEXT NOT NULL,           -- keccak256 of the sealed blob, as anchored
    tx_hash      TEXT,
    block_number INTEGER,
    created_at   INTEGER NOT NULL
);
CREATE INDEX records_patient ON records (patient);
CREATE INDEX records_author ON records (author);

-- An object's data key, wrapped (HPKE) for one reader: an address, or 'escrow'.
CREATE TABLE wraps (
    object_id TEXT NOT NULL,
    reader    TEXT NOT NULL,
    wrapped   BLOB NOT NULL,
    PRIMARY KEY (object_id, reader)
);

-- Which grants this server created, to find them by grantee; their truth is on chain.
CREATE TABLE grants (
    id          INTEGER PRIMARY KEY,      -- the Consent contract's grant id
    patient     TEXT NOT NULL,
    doctor      TEXT,
    hospital_id INTEGER,
    tx_hash     TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX grants_patient ON grants (patient);
CREATE INDEX grants_doctor ON grants (doctor);

CREATE TABLE emergencies (
    id         INTEGER PRIMARY KEY,
    patient    TEXT NOT NULL,
    doctor     TEXT NOT NULL,
    reason     BLOB NOT NULL,             -- sealed, readable by the patient and the doctor
    until      INTEGER NOT NULL,
    tx_hash    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX emergencies_doctor ON emergencies (doctor);
