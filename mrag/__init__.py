"""mrag."""
