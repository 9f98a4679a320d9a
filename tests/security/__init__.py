"""The threat model, one module per category of attack on the server's edges.

Each module's docstring names the threat and what bounds or refuses it; its tests attack the
server the way an unauthenticated socket, a buggy client or another user would.
"""
