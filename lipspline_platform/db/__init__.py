"""Database layer: tables, engine/session handling, and the queries the API and worker share."""
