"""Blocks Network SDK: agent instance runtime, consumer API, streams."""
