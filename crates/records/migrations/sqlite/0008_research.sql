-- Researchers have accounts (SQLite cannot widen a CHECK in place: the table is rebuilt with
-- the columns it has by now).
CREATE TABLE users_new (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'patient', 'doctor', 'researcher')),
    address       TEXT NOT NULL UNIQUE,
    keystore      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    enc_public    TEXT NOT NULL,
    profile       BLOB,
    created_at    INTEGER NOT NULL,
    funded_wei    TEXT NOT NULL DEFAULT '0',
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('pending', 'active')),
    contact       BLOB,
    mfa_secret    BLOB,
    mfa_pending   BLOB,
    mfa_last_step INTEGER NOT NULL DEFAULT 0
);
INSERT INTO users_new (id, username, role, address, keystore, password_hash, enc_public, profile,
                       created_at, funded_wei, status, contact, mfa_secret, mfa_pending, mfa_last_step)
SELECT id, username, role, address, keystore, password_hash, enc_public, profile,
       created_at, funded_wei, status, contact, mfa_secret, mfa_pending, mfa_last_step
FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;

-- Invitations of researchers too (the name, off chain only, is the researcher's).
CREATE TABLE invites_new (
    invite_key  TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'doctor', 'researcher')),
    name        TEXT NOT NULL,
    hospital_id INTEGER,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_by     TEXT,
    tx_hash     TEXT
);
INSERT INTO invites_new SELECT invite_key, token_hash, role, name, hospital_id, created_by,
    created_at, expires_at, used_by, tx_hash FROM invites;
DROP TABLE invites;
ALTER TABLE invites_new RENAME TO invites;

-- A study registered on chain by an admin: the chain holds the keccak256 of `details` (title,
-- description, the data asked for: JSON, not personal data) and the study's end; the id is the
-- chain's, known once the registration is mined.
CREATE TABLE studies (
    details_hash TEXT PRIMARY KEY,
    id           INTEGER UNIQUE,
    researcher   TEXT NOT NULL,
    details      TEXT NOT NULL,
    ends_at      INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    tx_hash      TEXT
);
