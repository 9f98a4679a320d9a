"""The socket side: STOMP connections over WebSocket, destination routing, local fan-out."""

from ieum_chat.gateway.connection import Gateway, StompConnection
from ieum_chat.gateway.hub import Hub
from ieum_chat.gateway.transports import QueuedTransport, Transport

__all__ = ["Gateway", "Hub", "QueuedTransport", "StompConnection", "Transport"]
