-- The chain index: blocks, transactions and the medledger contracts' events, copied from the
-- chain as it grows so that the access log, an account's transactions and the contracts' counts
-- cost the same however long the chain has grown. It is rebuilt from the chain (after a
-- reorganisation, or on another chain), never trusted over it, and not part of a backup.
CREATE TABLE chain_blocks (
    number INTEGER PRIMARY KEY,
    hash   TEXT NOT NULL,
    time   INTEGER NOT NULL                -- the block's timestamp
);
-- Each account's transactions (those it sent, received, or that created it), as its page lists
-- them, kept together by the key a page reads them in (WITHOUT ROWID: a page is one run of rows).
CREATE TABLE chain_account_txs (
    account   TEXT NOT NULL,               -- lowercase hex
    block     INTEGER NOT NULL,
    position  INTEGER NOT NULL,            -- the transaction's index in its block
    hash      TEXT NOT NULL,
    time      INTEGER NOT NULL,            -- the block's timestamp
    sender    TEXT NOT NULL,               -- checksummed addresses, as pages show them
    recipient TEXT,                        -- NULL: a contract creation
    created   TEXT,                        -- the contract a creation makes
    method    TEXT NOT NULL,               -- the function called, by name where the ABI knows it
    value     TEXT NOT NULL,               -- wei, decimal
    direction TEXT NOT NULL,               -- 'out', 'in', 'self', 'create'
    PRIMARY KEY (account, block, position)
) WITHOUT ROWID;
CREATE TABLE chain_account_counts (
    account TEXT PRIMARY KEY,
    txs     INTEGER NOT NULL
);
-- The logs of the three contracts, as eth_getLogs returns them.
CREATE TABLE chain_events (
    block     INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    tx_hash   TEXT NOT NULL,
    address   TEXT NOT NULL,               -- lowercase hex, as are the topics
    topic0    TEXT NOT NULL,
    topic1    TEXT,
    topic2    TEXT,
    topic3    TEXT,
    data      TEXT NOT NULL,               -- hex
    PRIMARY KEY (block, log_index)
);
CREATE INDEX chain_events_topic1 ON chain_events (topic1, block, log_index);
CREATE INDEX chain_events_topic2 ON chain_events (topic2, block, log_index);
CREATE TABLE chain_event_counts (
    address TEXT NOT NULL,
    topic0  TEXT NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (address, topic0)
);
