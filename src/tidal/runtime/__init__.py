"""The runtime: executor loop, source ingestion, watermarks, timers, dead letters."""
