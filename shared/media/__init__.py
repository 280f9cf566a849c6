"""Media in and at rest: opening an upload safely, probing it, where uploads live, and the sweep
of orphaned uploads."""
