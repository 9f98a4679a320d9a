"""Chat domain: validation, the service, presence and the wire JSON."""
