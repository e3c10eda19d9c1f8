"""Point-in-time snapshots and features: leakage-proof training sets for leads and deals."""
