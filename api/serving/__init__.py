"""Model servers: the ModelServer protocol and its backends."""
