-- The security log: one row per security-relevant event (who, what, from where, outcome), for
-- the admin's page. Never a secret, a password, a code or anything clinical.
CREATE TABLE security_events (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    who     TEXT NOT NULL,
    client  TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX security_events_at ON security_events (at);
