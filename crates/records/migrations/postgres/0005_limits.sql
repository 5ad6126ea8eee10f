-- PostgreSQL's twin of migrations/sqlite/0005_limits.sql.
-- Counters that every app server of a deployment shares: sign-ups per client, the faucet's
-- fundings per day, an account's top-ups per day. A counter restarts when its window has passed.
CREATE TABLE rate_limits (
    key      TEXT PRIMARY KEY,            -- 'signup 203.0.113.0', 'faucet', 'top-up 0x…'
    count    BIGINT NOT NULL,
    first_at BIGINT NOT NULL              -- seconds since the epoch: the window's start
);
