"""The relay command protocol v1 (see ``shared/reference/relay-protocol.md``)."""
