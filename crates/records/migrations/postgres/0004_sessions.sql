-- PostgreSQL's twin of migrations/sqlite/0004_sessions.sql (BIGINT for INTEGER, BYTEA for BLOB, identity
-- columns for SQLite's rowids): a test compares the schemas the two sets make.
-- Sessions, shared by every app server of a deployment. A session is found by the hash of one
-- half of its token; the person's key is sealed under the other half, which only the client
-- holds: a copy of this table opens nothing.
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,          -- keccak256 of the token's first half
    user_id    BIGINT NOT NULL,
    sealed_key BYTEA NOT NULL,             -- the person's private key, sealed under the second half
    restricted BIGINT NOT NULL,          -- 1: only setting up a second factor is allowed
    created_at BIGINT NOT NULL,          -- milliseconds since the epoch
    last_seen  BIGINT NOT NULL           -- milliseconds
);
CREATE INDEX sessions_user ON sessions (user_id);
