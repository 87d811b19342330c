"""The virtual rig: a whole bench emulated at the instruments' wire protocols.

Everything that knows it is simulated lives here; drivers talk to these instruments through the
same protocols (pty console, SCPI over TCP, MQTT, Semtech UDP, pyocd probe) as to real ones.
"""
