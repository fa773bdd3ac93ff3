"""Real services for the tests (Azurite, ...), started on free ports and always stopped."""
