-- PostgreSQL's twin of migrations/sqlite/0008_research.sql.
-- Researchers have accounts.
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('admin', 'patient', 'doctor', 'researcher'));

-- Invitations of researchers too (the name, off chain only, is the researcher's).
ALTER TABLE invites DROP CONSTRAINT invites_role_check;
ALTER TABLE invites ADD CONSTRAINT invites_role_check
    CHECK (role IN ('admin', 'doctor', 'researcher'));

-- A study registered on chain by an admin: the chain holds the keccak256 of `details` (title,
-- description, the data asked for: JSON, not personal data) and the study's end; the id is the
-- chain's, known once the registration is mined.
CREATE TABLE studies (
    details_hash TEXT PRIMARY KEY,
    id           BIGINT UNIQUE,
    researcher   TEXT NOT NULL,
    details      TEXT NOT NULL,
    ends_at      BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    tx_hash      TEXT
);
