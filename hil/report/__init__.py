"""Reports: what a test run leaves behind for the people who decide.

* :mod:`.steps`: ``rig_step(name, clock, **params)``, an Allure step stamped with rig time, and
  ``rig_step_method``, the same as a method decorator (the drivers' power cycle, join, uplink,
  reset, relay command and meter reading use it); the step log the timeline reads;
* :mod:`.evidence`: what happened on the rig during one test, sliced by rig time from the parts'
  own records (console transcript, network events, supply events, meter readings, relay packets);
* :mod:`.tables` (frame table as CSV and HTML, supply and relay records) and :mod:`.timeline`
  (the PNG plot); :mod:`.sampler` (optional supply V/I sampling during a test);
* data: ``labels.yaml`` (epic and default severity per suite), ``categories.yaml`` (Product
  defect, Rig fault, Timing, Test error) read by :mod:`.categories`, ``executors.yaml`` read by
  :mod:`.environment` (``environment.properties``, ``executor.json``); :mod:`.scrub` keeps
  secrets out of every result file;
* :mod:`.results` (reading an Allure results folder) and :mod:`.gate` (the release gate's rule);
  :mod:`.allure_cli` (finding and running Allure 3 or 2) and :mod:`.screenshot` (headless Chromium
  check that the HTML report renders its summary).

The pytest side is :mod:`hil.plugin.reporting`; the commands are ``python -m hil report`` and
``python -m hil gate``. This package imports nothing heavy at import time: drivers import
:mod:`.steps`, and matplotlib is loaded only when a plot is drawn.
"""
