"""Products: the catalog's items, with price, stock and optimistic concurrency."""
