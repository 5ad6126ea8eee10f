-- PostgreSQL's twin of migrations/sqlite/0011_trust.sql.
ALTER TABLE chain_writes ADD COLUMN note TEXT;
ALTER TABLE emergencies ADD COLUMN reason_hash TEXT;
ALTER TABLE records ADD COLUMN blob_hash TEXT;
