"""Serving a policy over WebSocket + msgpack, and evaluating a served one as if it were local."""
