"""The database kit: engine and pool, session per request, declarative base, errors."""
