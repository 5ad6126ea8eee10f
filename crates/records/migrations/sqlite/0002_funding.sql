-- The ether an account was given at creation, so its page can show what it has spent on fees.
ALTER TABLE users ADD COLUMN funded_wei TEXT NOT NULL DEFAULT '0';
