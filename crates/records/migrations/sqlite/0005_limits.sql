-- Counters that every app server of a deployment shares: login attempts per name (they were in
-- login_failures), sign-ups per client, the faucet's fundings per day, an account's top-ups per day.
-- A counter restarts when its window has passed.
CREATE TABLE rate_limits (
    key      TEXT PRIMARY KEY,            -- 'login NAME', 'signup 203.0.113.0', 'faucet', 'top-up 0x…'
    count    INTEGER NOT NULL,
    first_at INTEGER NOT NULL             -- seconds since the epoch: the window's start
);
DROP TABLE login_failures;
