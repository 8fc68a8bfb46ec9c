"""Every REST route of the rack, grouped as the official SDK groups them (convox-api.md §4)."""
