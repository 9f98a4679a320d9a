"""REST routes over the chat service and the store."""
