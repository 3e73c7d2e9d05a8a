"""Where a decision is signed: the gateway's Ed25519 key, the key holder process that alone
holds it, terminal proofs and signed auth frames."""
