-- PostgreSQL's twin of migrations/sqlite/0009_exports.sql.
-- A research export: made for a study by its researcher, de-identified, recorded on chain
-- (`files_hash`, `export_id`, `tx_hash` once mined). `report` is JSON: what was included and
-- what was suppressed, and why.
CREATE TABLE exports (
    id             TEXT PRIMARY KEY,
    study          BIGINT NOT NULL,
    researcher     TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    done_patients  BIGINT NOT NULL DEFAULT 0,
    total_patients BIGINT NOT NULL DEFAULT 0,
    report         TEXT,
    error          TEXT,
    files_hash     TEXT,
    export_id      BIGINT,
    tx_hash        TEXT,
    created_at     BIGINT NOT NULL,
    finished_at    BIGINT
);
-- Its files: one NDJSON body per resource type (de-identified data only).
CREATE TABLE export_files (
    export TEXT NOT NULL,
    kind   TEXT NOT NULL,
    lines  BIGINT NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (export, kind)
);
