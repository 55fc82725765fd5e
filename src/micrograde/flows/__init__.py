"""Prefect flows and tasks (thin), deployments, and the ``micrograde`` command line."""
