"""The user-facing dataflow API: flows, streams, windows, aggregates, watermarks."""
