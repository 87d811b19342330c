"""Top-level pytest configuration: the rig plugin will register here (see hil/)."""
