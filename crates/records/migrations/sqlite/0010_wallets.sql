-- Accounts whose key is held in the person's own wallet: no keystore and no password here, and
-- the X25519 key their data is wrapped to is derived from a signature of their wallet. SQLite
-- cannot drop NOT NULL in place: the table is rebuilt with the columns it has by now.
CREATE TABLE users_new (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'patient', 'doctor', 'researcher')),
    address       TEXT NOT NULL UNIQUE,
    -- 'custodial': the server keeps the key sealed under the password (keystore);
    -- 'wallet': the person's wallet signs; keystore and password_hash are NULL.
    mode          TEXT NOT NULL DEFAULT 'custodial' CHECK (mode IN ('custodial', 'wallet')),
    keystore      TEXT,
    password_hash TEXT,
    enc_public    TEXT NOT NULL,
    profile       BLOB,
    created_at    INTEGER NOT NULL,
    funded_wei    TEXT NOT NULL DEFAULT '0',
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('pending', 'active')),
    contact       BLOB,
    mfa_secret    BLOB,
    mfa_pending   BLOB,
    mfa_last_step INTEGER NOT NULL DEFAULT 0,
    CHECK ((mode = 'custodial') = (keystore IS NOT NULL AND password_hash IS NOT NULL))
);
INSERT INTO users_new (id, username, role, address, mode, keystore, password_hash, enc_public,
                       profile, created_at, funded_wei, status, contact, mfa_secret, mfa_pending,
                       mfa_last_step)
SELECT id, username, role, address, 'custodial', keystore, password_hash, enc_public, profile,
       created_at, funded_wei, status, contact, mfa_secret, mfa_pending, mfa_last_step
FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;

-- A wallet write is 'prepared': the call (to, input) is handed to the person's wallet, and the
-- write completes with the hash of the transaction the wallet sent (checked against the call).
-- `secret` says whether its success needs the acting patient's key.
CREATE TABLE chain_writes_new (
    id             INTEGER PRIMARY KEY,
    follow         TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('intent', 'prepared', 'pending', 'done', 'failed')),
    sender         TEXT,
    nonce          INTEGER,
    tx_hash        TEXT UNIQUE,
    raw            BLOB,
    created_at     INTEGER NOT NULL,
    resolved_at    INTEGER,
    to_address     TEXT,
    input          BLOB,
    prepared_block INTEGER,
    needs_secret   INTEGER NOT NULL DEFAULT 0
);
INSERT INTO chain_writes_new (id, follow, state, sender, nonce, tx_hash, raw, created_at, resolved_at)
SELECT id, follow, state, sender, nonce, tx_hash, raw, created_at, resolved_at FROM chain_writes;
DROP TABLE chain_writes;
ALTER TABLE chain_writes_new RENAME TO chain_writes;
CREATE INDEX chain_writes_open ON chain_writes (state) WHERE state IN ('intent', 'prepared', 'pending');
CREATE INDEX chain_writes_sender ON chain_writes (sender, state);

-- Sign-In with Ethereum: a nonce is handed out, used once, and dies after ten minutes.
CREATE TABLE siwe_nonces (
    nonce      TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
