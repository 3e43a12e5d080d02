"""The Kite market-data feed: WebSocket connections, binary frame decoding and tick sinks."""
