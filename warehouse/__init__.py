"""Storage, schema, sync and query: everything that reads or writes the warehouse folder."""
