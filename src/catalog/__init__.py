"""Product catalog and ordering HTTP API on FastAPI and SQLAlchemy 2.x."""

__version__ = "0.1.0"
