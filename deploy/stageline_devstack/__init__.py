"""Local stack for `make run`, `make test` and `make bench`: broker, Postgres and the services."""
