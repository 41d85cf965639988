"""Users, password hashing, authentication and privilege checks (no HTTP here)."""
