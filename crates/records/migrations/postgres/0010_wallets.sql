-- PostgreSQL's twin of migrations/sqlite/0010_wallets.sql.
ALTER TABLE users ADD COLUMN mode TEXT NOT NULL DEFAULT 'custodial'
    CHECK (mode IN ('custodial', 'wallet'));
ALTER TABLE users ALTER COLUMN keystore DROP NOT NULL;
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;
ALTER TABLE users ADD CONSTRAINT users_mode_keys
    CHECK ((mode = 'custodial') = (keystore IS NOT NULL AND password_hash IS NOT NULL));

ALTER TABLE chain_writes DROP CONSTRAINT chain_writes_state_check;
ALTER TABLE chain_writes ADD CONSTRAINT chain_writes_state_check
    CHECK (state IN ('intent', 'prepared', 'pending', 'done', 'failed'));
ALTER TABLE chain_writes ADD COLUMN to_address TEXT;
ALTER TABLE chain_writes ADD COLUMN input BYTEA;
ALTER TABLE chain_writes ADD COLUMN prepared_block BIGINT;
ALTER TABLE chain_writes ADD COLUMN needs_secret BIGINT NOT NULL DEFAULT 0;
DROP INDEX chain_writes_open;
CREATE INDEX chain_writes_open ON chain_writes (state) WHERE state IN ('intent', 'prepared', 'pending');
CREATE INDEX chain_writes_sender ON chain_writes (sender, state);

CREATE TABLE siwe_nonces (
    nonce      TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
