"""The pytest plugin: rig files to live fixtures, rig locking, safe state, rig faults as errors."""
