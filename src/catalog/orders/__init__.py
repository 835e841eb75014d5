"""Orders: stock taken and given back in one transaction, never oversold, never doubled."""
