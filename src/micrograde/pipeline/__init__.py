"""Framework-free steps of micrograde (never Prefect, FastAPI or torch), one subpackage per kind."""
