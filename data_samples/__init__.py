"""Sample data and the demo pipeline that turns it into a warehouse."""
