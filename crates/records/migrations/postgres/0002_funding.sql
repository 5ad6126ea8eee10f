-- PostgreSQL's twin of migrations/sqlite/0002_funding.sql (BIGINT for INTEGER, BYTEA for BLOB, identity
-- columns for SQLite's rowids): a test compares the schemas the two sets make.
-- The ether an account was given at creation, so its page can show what it has spent on fees.
ALTER TABLE users ADD COLUMN funded_wei TEXT NOT NULL DEFAULT '0';
