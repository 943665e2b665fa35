"""`llmp`: the platform's command line, a client of a running service (api/cli/main.py)."""
