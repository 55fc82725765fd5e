"""Reading and validating micrograph files, atomic writes, digests, name matching, the folder watcher."""
