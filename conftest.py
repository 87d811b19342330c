"""Top-level pytest configuration: the rig plugin (``--rig``, fixtures for the rig's parts) and the
reporting plugin (Allure labels and evidence, JUnit properties, the per-suite summary).

``pytester`` is enabled for the plugin's own tests (tests/unit/test_plugin.py).
"""

pytest_plugins = ["hil.plugin.pytest_plugin", "hil.plugin.reporting", "pytester"]
