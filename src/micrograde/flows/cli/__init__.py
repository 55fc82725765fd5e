"""The ``micrograde`` command line (click): one module per command group."""
