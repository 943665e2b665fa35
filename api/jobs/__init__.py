"""Long work as jobs: SQLite store, one-at-a-time runner, subprocess per job."""
