-- Trust by construction.
-- A logged read of a search says what was searched, for the patient's log ("searched your
-- conditions"); a completed wallet transaction stands in only for the same read.
ALTER TABLE chain_writes ADD COLUMN note TEXT;
-- The salted hash of an emergency's reason as it went on chain: a declaration whose hash no row
-- holds was made around the server, and the escrow opens nothing under it.
ALTER TABLE emergencies ADD COLUMN reason_hash TEXT;
-- keccak256 of a record's sealed body. A record that has one was anchored with, on chain,
-- one hash over its body's, its sealed metadata's and its sealed structured content's hashes
-- (reports/anchor.rs); a record without one (older) was anchored by its body alone.
ALTER TABLE records ADD COLUMN blob_hash TEXT;
