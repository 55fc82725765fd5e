"""Annotators, append-only annotations, consensus, agreement, import/export."""
