"""psqs.deploy: the ``psqs`` command line, stage orchestration and the board emulator."""
