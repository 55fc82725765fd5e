"""The workspace: catalogue schema, cache of preprocessed micrographs, queries, sessions, ingest."""
