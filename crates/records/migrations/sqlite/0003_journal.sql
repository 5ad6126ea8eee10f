-- Every chain write the app starts, journalled before it is sent and resolved by its receipt:
-- what follows from its success or failure is done exactly once, also after a crash.
CREATE TABLE chain_writes (
    id          INTEGER PRIMARY KEY,
    -- JSON: what to do once the transaction is mined, or surely will never be.
    follow      TEXT NOT NULL,
    -- 'intent': nothing signed yet (a crash here means nothing was sent);
    -- 'pending': signed and maybe sent; 'done'; 'failed'.
    state       TEXT NOT NULL CHECK (state IN ('intent', 'pending', 'done', 'failed')),
    sender      TEXT,
    nonce       INTEGER,
    tx_hash     TEXT UNIQUE,
    raw         BLOB,                     -- the signed transaction, to send again if lost
    created_at  INTEGER NOT NULL,
    resolved_at INTEGER
);
CREATE INDEX chain_writes_open ON chain_writes (state) WHERE state IN ('intent', 'pending');

-- An account whose on-chain registration is not confirmed yet cannot log in.
ALTER TABLE users ADD COLUMN status TEXT NOT NULL DEFAULT 'active'
    CHECK (status IN ('pending', 'active'));

-- A declared emergency: its reason sealed for the patient and the doctor (the chain holds a
-- salted hash of it). Written before the declaration is sent; `tx_hash` and `until` once mined.
DROP TABLE emergencies;
CREATE TABLE emergencies (
    object     TEXT PRIMARY KEY,          -- 'emergency:0x…': the reason's key is wrapped under it
    patient    TEXT NOT NULL,
    doctor     TEXT NOT NULL,
    reason     BLOB NOT NULL,
    until      INTEGER,
    tx_hash    TEXT,
    chain_id   INTEGER,                   -- the Consent contract's emergency id
    created_at INTEGER NOT NULL
);
CREATE INDEX emergencies_tx ON emergencies (tx_hash);
CREATE INDEX emergencies_doctor ON emergencies (doctor);
CREATE INDEX emergencies_patient ON emergencies (patient);

-- A patient's contact details, sealed apart from their name and date of birth (`profile`): a
-- grant of single records shows who the patient is, not how to reach them.
ALTER TABLE users ADD COLUMN contact BLOB;

-- One-time enrolment links for doctors and admins: the admin never learns their password or key.
-- The link's token is stored only hashed; its key (derived from the token) is what the chain
-- knows the invitation by.
CREATE TABLE invites (
    invite_key TEXT PRIMARY KEY,          -- the address of the key derived from the token
    token_hash TEXT NOT NULL UNIQUE,      -- keccak256 of the token
    role       TEXT NOT NULL CHECK (role IN ('admin', 'doctor')),
    name       TEXT NOT NULL,             -- directory name (public, on chain too), or '' for an admin
    hospital_id INTEGER,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_by    TEXT,                      -- the account that took it up
    tx_hash    TEXT
);

-- A second factor (TOTP, RFC 6238): the shared secret sealed under a key wrapped for the
-- person's own key (so only their unlocked key reads it), the last time step used (a code is
-- accepted once), and a secret being set up.
ALTER TABLE users ADD COLUMN mfa_secret BLOB;
ALTER TABLE users ADD COLUMN mfa_pending BLOB;
ALTER TABLE users ADD COLUMN mfa_last_step INTEGER NOT NULL DEFAULT 0;
