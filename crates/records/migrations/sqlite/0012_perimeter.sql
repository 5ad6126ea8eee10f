-- The perimeter.
-- A Sign-In with Ethereum nonce is bound to the address it was asked for (a message for another
-- account cannot use it) and expires unused; the expiry sweep reads by age.
ALTER TABLE siwe_nonces ADD COLUMN address TEXT;
CREATE INDEX siwe_nonces_created_at ON siwe_nonces (created_at);
