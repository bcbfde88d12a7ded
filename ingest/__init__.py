"""The logging library and importers: how facts get into a warehouse."""
