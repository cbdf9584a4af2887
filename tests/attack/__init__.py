"""One attacker file per trust surface (docs/security.md gives each its row)."""
